import Foundation
import Hummingbird
import NIOCore
import HTTPTypes
import VaultCrypto

/// The request handlers. Every OAuth request is counted, delayed, possibly faulted,
/// validated as KIS validates it, and answered in KIS's shapes.
struct MockRoutes: Sendable {
    let state: MockState

    static let hashkeyPath = "/uapi/hashkey"
    static let pricePath = "/uapi/domestic-stock/v1/quotations/inquire-price"
    /// The quote's tr_id (주식현재가 시세).
    static let priceTrID = "FHKST01010100"

    func register(on router: Router<BasicRequestContext>) {
        for path in ["/oauth2/Approval", "/oauth2/tokenP", "/oauth2/revokeP"] {
            router.post(RouterPath(path)) { request, _ in try await handle(path: path, request: request) }
        }
        router.post(RouterPath(Self.hashkeyPath)) { request, _ in try await data(path: Self.hashkeyPath, request: request) }
        router.get(RouterPath(Self.pricePath)) { request, _ in try await data(path: Self.pricePath, request: request) }
        router.get("/__mock/stats") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: state.statsJSON())))
        }
        router.post("/__mock/clock/advance") { request, _ in
            guard let seconds = request.uri.queryParameters.get("seconds", as: Double.self) else {
                return json(400, ["error": "give ?seconds=N"])
            }
            state.advanceClock(by: seconds)
            return json(200, ["advanced": seconds])
        }
        router.post("/__mock/reset") { _, _ in
            state.reset()
            return json(200, ["reset": true])
        }
        // Queue an error for the next matching requests:
        // {"code": "EGW00207", "status": 403, "shape": "oauth"|"data", "count": 1, "path": "/oauth2/tokenP"}
        router.post("/__mock/next-error") { request, _ in
            let body = try await request.body.collect(upTo: 4096)
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  let code = object["code"] as? String else {
                return json(400, ["error": "give {\"code\": ...}"])
            }
            state.force(.init(path: object["path"] as? String, code: code, status: object["status"] as? Int ?? 403,
                                    dataShape: object["shape"] as? String == "data", remaining: object["count"] as? Int ?? 1))
            return json(200, ["queued": code])
        }
    }

    /// What every request goes through first: counted, delayed, and answered with a
    /// queued error or a drawn fault if there is one (nil: go on).
    func intercept(path: String, dataShape: Bool) async throws -> Response? {
        state.countRequest(path: path)
        let plan = state.plan()
        if plan.latency > 0 { try await Task.sleep(for: .milliseconds(Int(plan.latency * 1000))) }
        if let forced = state.takeForced(path: path) {
            state.countOutcome(forced.code, path: path, appkey: nil)
            return forced.dataShape || dataShape ? dataError(forced.status, forced.code) : oauthError(forced.status, forced.code)
        }
        if let fault = plan.fault {
            state.countOutcome("fault:\(fault.rawValue)", path: path, appkey: nil)
            return try await inject(fault)
        }
        return nil
    }

    func handle(path: String, request: Request) async throws -> Response {
        if let early = try await intercept(path: path, dataShape: false) { return early }
        let contentType = request.headers[.contentType] ?? ""
        guard contentType.lowercased().hasPrefix("application/json") else {
            state.countOutcome("EGW00132", path: path, appkey: nil)
            return oauthError(403, "EGW00132")
        }
        let buffer = try await request.body.collect(upTo: 65536)
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
        let appkey = (body["appkey"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        let secretField = path == "/oauth2/Approval" ? "secretkey" : "appsecret"
        let secret = (body[secretField] as? String).flatMap { $0.isEmpty ? nil : $0 }

        func refuse(_ status: Int, _ code: String) async -> Response {
            state.countOutcome(code, path: path, appkey: appkey)
            return oauthError(status, code)
        }
        if path != "/oauth2/revokeP", body["grant_type"] as? String != "client_credentials" {
            return await refuse(403, "EGW00205")
        }
        guard let appkey else { return await refuse(403, "EGW00102") }
        guard let secret else { return await refuse(403, "EGW00104") }
        guard let account = state.accountsByKey[appkey] else { return await refuse(403, "EGW00103") }
        if let only = state.configuration.environment, account.environment != only { return await refuse(403, "EGW00103") }
        guard account.appsecret == secret else { return await refuse(403, "EGW00105") }
        guard state.admit(appkey: appkey, environment: account.environment) else {
            state.countOutcome("EGW00201", path: path, appkey: appkey)
            return dataError(500, "EGW00201")
        }

        switch path {
        case "/oauth2/Approval":
            state.countOutcome("ok", path: path, appkey: appkey)
            let key = MockTokens.approvalKey()
            state.issueApproval(appkey: appkey, key: key)
            return json(200, ["approval_key": key])
        case "/oauth2/tokenP":
            guard let token = state.issueToken(appkey: appkey, make: { MockTokens.jwt(appkey: appkey, issuedAt: $0, expiresAt: $1) }) else {
                return await refuse(403, "EGW00133")
            }
            state.countOutcome("ok", path: path, appkey: appkey)
            let now = state.now()
            return json(200, [
                "access_token": token.value, "token_type": "Bearer",
                "expires_in": token.handedBack && state.configuration.expiresInQuirk ? 86_400 : max(0, Int(token.expiresAt.timeIntervalSince(now))),
                "access_token_token_expired": MockTokens.koreaTime(token.expiresAt),
            ])
        default:
            guard let token = body["token"] as? String, state.revoke(appkey: appkey, token: token) else {
                return await refuse(403, "EGW00121")
            }
            state.countOutcome("ok", path: path, appkey: appkey)
            return json(200, ["code": 200, "message": "접근토큰 폐기에 성공하였습니다"])
        }
    }

    /// The data endpoints: the app credentials in headers, answered in the data shape
    /// (`rt_cd`, `msg_cd`, `msg1`) as KIS's are. The quote also checks the bearer token
    /// against the appkey: EGW00121 for an unknown, revoked or other appkey's token,
    /// EGW00123 for an expired one of its own.
    func data(path: String, request: Request) async throws -> Response {
        if let early = try await intercept(path: path, dataShape: true) { return early }
        let appkey = request.headers[HTTPField.Name("appkey")!].flatMap { $0.isEmpty ? nil : $0 }
        let secret = request.headers[HTTPField.Name("appsecret")!].flatMap { $0.isEmpty ? nil : $0 }
        func refuse(_ code: String, status: Int = 500) -> Response {
            state.countOutcome(code, path: path, appkey: appkey)
            return dataError(status, code)
        }
        guard let appkey else { return refuse("EGW00102") }
        guard let secret else { return refuse("EGW00104") }
        guard let account = state.accountsByKey[appkey] else { return refuse("EGW00103") }
        if let only = state.configuration.environment, account.environment != only { return refuse("EGW00103") }
        guard account.appsecret == secret else { return refuse("EGW00105") }
        guard state.admit(appkey: appkey, environment: account.environment) else { return refuse("EGW00201") }

        if path == Self.hashkeyPath {
            let body = try await request.body.collect(upTo: 65536)
            guard (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) is [String: Any] else { return refuse("OPSQ0001") }
            state.countOutcome("ok", path: path, appkey: appkey)
            let hash = Digest.sha256Hex(Array(secret.utf8) + Array(body.readableBytesView))
            return json(200, ["BODY": (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) ?? [:], "HASH": hash])
        }
        let authorization = request.headers[.authorization] ?? ""
        guard authorization.lowercased().hasPrefix("bearer "), !authorization.dropFirst(7).isEmpty else { return refuse("EGW00122") }
        switch state.checkToken(appkey: appkey, token: String(authorization.dropFirst(7))) {
        case .invalid: return refuse("EGW00121")
        case .expired: return refuse("EGW00123")
        case .valid: break
        }
        guard request.headers[HTTPField.Name("tr_id")!] == Self.priceTrID else { return refuse("OPSQ0002") }
        let code = request.uri.queryParameters.get("FID_INPUT_ISCD") ?? ""
        guard code.utf8.count == 6, code.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) }) else { return refuse("OPSQ0003") }
        state.countOutcome("ok", path: path, appkey: appkey)
        return json(200, ["rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.", "output": MockQuotes.quote(code: code)])
    }

    func inject(_ fault: MockFault) async throws -> Response {
        switch fault {
        case .serverError:
            return oauthError(500, state.coin() ? "EGW00001" : "EGW00002")
        case .html:
            return Response(status: .init(code: 502), headers: [.contentType: "text/html"],
                            body: .init(byteBuffer: ByteBuffer(string: "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>")))
        case .truncated:
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "{\"approval_key\": \"3f9a")))
        case .empty:
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer()))
        case .drop:
            // Announce a body and then fail writing it: the server closes the connection
            // mid-response, which a client sees as a dropped connection.
            return Response(status: .ok, headers: [.contentType: "application/json", .contentLength: "100"],
                            body: ResponseBody { _ in throw CancellationError() })
        case .hostileKey:
            let poison = "abc\n\u{1b}]0;PWNED\u{07}\u{1b}[2J" + String(repeating: "x", count: 40)
            return json(200, ["approval_key": poison, "access_token": poison, "token_type": "Bearer\u{1b}[31m",
                              "expires_in": 86_400, "access_token_token_expired": MockTokens.koreaTime(state.now().addingTimeInterval(86_400))])
        case .hostileError:
            return json(403, ["error_code": "EGW00103", "error_description": "bad key\u{1b}]0;PWNED\u{07}\u{1b}[31m\nkisvault: all good\u{9b}2J"])
        case .stall:
            try await Task.sleep(for: .milliseconds(Int(state.configuration.stallSeconds * 1000)))
            return oauthError(504, "EGW00002")
        case .drip:
            let body = Array(#"{"approval_key": "\#(String(repeating: "d", count: 64))"}"#.utf8)
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.count)],
                            body: ResponseBody { writer in
                                for byte in body {
                                    try await writer.write(ByteBuffer(bytes: [byte]))
                                    try await Task.sleep(for: .seconds(1))
                                }
                                try await writer.finish(nil)
                            })
        }
    }
}

/// KIS's descriptions for the codes the mock produces (KIS-API.md, "Errors").
let kisMessages: [String: String] = [
    "EGW00001": "일시적인 오류가 발생했습니다.",
    "EGW00002": "서버 에러가 발생했습니다.",
    "EGW00102": "AppKey는 필수입니다.",
    "EGW00103": "유효하지 않은 AppKey입니다.",
    "EGW00104": "AppSecret은 필수입니다.",
    "EGW00105": "유효하지 않은 AppSecret입니다.",
    "EGW00121": "유효하지 않은 token 입니다.",
    "EGW00122": "token을 찾을 수 없습니다.",
    "EGW00123": "기간이 만료된 token 입니다.",
    "EGW00132": "잘못된 Content-Type 입니다.",
    "EGW00133": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
    "EGW00201": "초당 거래건수를 초과하였습니다.",
    "EGW00205": "grant_type 값이 올바르지 않습니다.",
    "EGW00206": "API 사용 권한이 없습니다.",
    "EGW00207": "IP 주소가 없거나 유효하지 않은 IP 주소입니다.",
    "OPSQ0001": "요청 본문(JSON)이 올바르지 않습니다.",
    "OPSQ0002": "없는 서비스 코드 입니다",
    "OPSQ0003": "종목코드가 올바르지 않습니다.",
]

/// Deterministic fake prices: the same code always quotes the same, so tests can compare.
enum MockQuotes {
    static func quote(code: String) -> [String: String] {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in code.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let price = 1_000 + Int(hash % 199_000) / 10 * 10
        let change = Int((hash >> 20) % 2_001) - 1_000
        let open = price - change
        return ["stck_shrn_iscd": code, "stck_prpr": String(price), "prdy_vrss": String(change),
                "prdy_vrss_sign": change > 0 ? "2" : change < 0 ? "5" : "3", "stck_oprc": String(open),
                "stck_hgpr": String(max(price, open) + 50), "stck_lwpr": String(max(10, min(price, open) - 50)),
                "acml_vol": String(Int((hash >> 32) % 5_000_000))]
    }
}

func json(_ status: Int, _ object: [String: Any]) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(status: .init(code: status), headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// `{"error_code", "error_description"}`: the OAuth endpoints' error shape.
func oauthError(_ status: Int, _ code: String) -> Response {
    json(status, ["error_code": code, "error_description": kisMessages[code] ?? "오류"])
}

/// `{"rt_cd", "msg_cd", "msg1"}`: the data endpoints' error shape.
func dataError(_ status: Int, _ code: String) -> Response {
    json(status, ["rt_cd": "1", "msg_cd": code, "msg1": kisMessages[code] ?? "오류"])
}

/// Credential material in KIS's shapes. Random, not secret: nothing validates the
/// signature, so it only has to look like KIS's.
enum MockTokens {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")

    /// 286 characters, the documented approval key length.
    static func approvalKey() -> String {
        var out = ""
        out.reserveCapacity(286)
        for i in 0..<286 {
            out.append(i % 9 == 8 ? "-" : alphabet[Int.random(in: 0..<alphabet.count)])
        }
        return out
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// An HS512-shaped JWT whose `jti` is the appkey, as KIS's are.
    static func jwt(appkey: String, issuedAt: Date, expiresAt: Date) -> String {
        let header = #"{"typ":"JWT","alg":"HS512"}"#
        let payload = #"{"sub":"token","aud":"\#(UUID().uuidString.lowercased())","prdt_cd":"","iss":"unogw","exp":\#(Int(expiresAt.timeIntervalSince1970)),"iat":\#(Int(issuedAt.timeIntervalSince1970)),"jti":"\#(appkey)"}"#
        let signature = Data((0..<64).map { _ in UInt8.random(in: 0...255) })
        return [base64url(Data(header.utf8)), base64url(Data(payload.utf8)), base64url(signature)].joined(separator: ".")
    }

    /// `yyyyMMddHHmmss` in Korea time, as KIS stamps its WebSocket frames.
    static func koreaStamp(_ date: Date) -> String {
        koreaTime(date).filter(\.isNumber)
    }

    /// `count` random bytes in hex (the WebSocket acknowledgement's `iv` and `key`).
    static func hex(_ count: Int) -> String {
        (0..<count).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// `yyyy-MM-dd HH:mm:ss` in Korea time (UTC+9, no daylight saving), as KIS writes
    /// `access_token_token_expired`.
    static func koreaTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 9 * 3600)
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: date)
    }
}
