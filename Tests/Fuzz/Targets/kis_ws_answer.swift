// libFuzzer target: the WebSocket registration answer reader on arbitrary frames
// (scripts/fuzz.sh). Compiled in one module with KISAPI's pure files (KISWebSocketAnswer,
// KISShapes).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKISWebSocketAnswer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    switch KISWebSocketAnswer.outcome(of: text) {
    case .rejected(let code, let message):
        // Whatever the server sent, what kisvault would print is clean and bounded.
        precondition(code == "malformed" || KISShapes.isCode(code))
        precondition(!message.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
        precondition(message.count <= KISShapes.maxMessage + 1)
    case .ok, .inUse, .unreachable, nil:
        break
    }
    return 0
}
