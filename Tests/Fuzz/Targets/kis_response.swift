// libFuzzer target: the KIS answer decoder on arbitrary bytes (scripts/fuzz.sh). The first
// byte picks the HTTP status and which answer is read; the rest is the body. Compiled in
// one module with KISAPI's pure files (KISResponse, KISError, KISShapes, KISCredential).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKISResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = data[0]
    let statuses = [200, 200, 403, 500, 502, 201, 404, 200]
    let status = statuses[Int(selector & 7)]
    let body = Data(bytes: data + 1, count: size - 1)
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    do {
        let object = try KISResponse.decode(status: status, body: body, path: "/oauth2/tokenP")
        if selector & 8 == 0 {
            let token = try KISResponse.accessToken(from: object, now: now)
            precondition(KISShapes.isAccessToken(token.token))
        } else {
            let key = try KISResponse.approvalKey(from: object, now: now)
            precondition(KISShapes.isApprovalKey(key.key))
        }
    } catch {
        // Whatever the server sent, what kisvault would print is clean and bounded.
        precondition(!error.message.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
        precondition(error.message.count < 1000)
        precondition(error.code.map(KISShapes.isCode) ?? true)
    }
    return 0
}
