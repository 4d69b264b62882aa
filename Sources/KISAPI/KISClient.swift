import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Settings of a ``KISClient``.
public struct KISClientConfiguration: Sendable {
    public var endpoints: KISEndpoints
    /// Time to establish a connection.
    public var connectTimeout: TimeInterval = 5
    /// Time for one whole request, response body included.
    public var requestTimeout: TimeInterval = 15
    public var retry: RetryPolicy = RetryPolicy()
    /// Requests per second per host, across all callers of this client (nil: unlimited).
    public var perHostRate: Double?
    /// Largest response body read; KIS's auth answers are well under 2 KiB.
    public var maxBodyBytes = 64 * 1024
    public var userAgent = "kisvault/\(kisvaultVersion)"

    public init(endpoints: KISEndpoints) {
        self.endpoints = endpoints
    }
}

/// The version reported in `User-Agent`.
public let kisvaultVersion = "0.1.0"

/// KIS's four authentication endpoints over one pooled `HTTPClient`.
///
/// Every call classifies failures into ``KISError``, retries the retryable ones with
/// jittered backoff per ``RetryPolicy``, and never puts a credential in an error or log.
/// Call ``shutdown()`` when done.
public final class KISClient: Sendable {
    public let configuration: KISClientConfiguration
    let http: HTTPClient
    let limiters: [KISEnvironment: RateLimiter]
    let logger: Logger
    /// Requests sent, retries included (for tests and benchmarks).
    let counter = RequestCounter()
    let shutDown = OnceFlag()

    /// - Throws: ``KISConfigurationError`` when an endpoint is not https or loopback http.
    public init(configuration: KISClientConfiguration, logger: Logger = Logger(label: "kisvault.kis")) throws {
        try configuration.endpoints.validate()
        self.configuration = configuration
        self.logger = logger
        var http = HTTPClient.Configuration()
        http.timeout = .init(connect: .milliseconds(Int64(configuration.connectTimeout * 1000)),
                             read: .milliseconds(Int64(configuration.requestTimeout * 1000)))
        http.redirectConfiguration = .disallow
        // No tracing: a span per request (attributes built as strings) was a tenth of the
        // client's CPU in a bulk run, and kisvault has no tracer to hand them to.
        http.tracing.tracer = nil
        // Enough idle connections for a bulk run at high concurrency to reuse them all.
        http.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        if let rate = configuration.perHostRate {
            let shared = configuration.endpoints.real == configuration.endpoints.mock ? RateLimiter(rate: rate) : nil
            limiters = [.real: shared ?? RateLimiter(rate: rate), .mock: shared ?? RateLimiter(rate: rate)]
        } else {
            limiters = [:]
        }
    }

    /// Closes the connection pool. The client cannot be used afterwards.
    public func shutdown() async {
        guard shutDown.setOnce() else { return }
        try? await http.shutdown()
    }

    deinit {
        // A client dropped on an error path must not take the process down (HTTPClient
        // traps when released open): start its shutdown, which keeps it alive until done.
        if shutDown.setOnce() { http.shutdown { _ in } }
    }

    /// Requests sent so far, retries included.
    public var requestsSent: Int { counter.value }

    /// Issues a WebSocket approval key (`POST /oauth2/Approval`).
    /// - Throws: ``KISError``.
    public func approvalKey(environment: KISEnvironment, appkey: String, secret: String) async throws(KISError) -> ApprovalKey {
        let body = try await post(environment: environment, path: "/oauth2/Approval",
                                  fields: ["grant_type": "client_credentials", "appkey": appkey, "secretkey": secret])
        let key = try Self.requiredText("approval_key", in: body, path: "/oauth2/Approval")
        guard KISShapes.isApprovalKey(key) else {
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/Approval with an approval_key that is not in KIS's shape (\(key.utf8.count) bytes; expected up to \(KISShapes.maxApprovalKey) of letters, digits and -_.+/=); nothing was stored", httpStatus: 200)
        }
        let now = Date()
        return ApprovalKey(key: key, issuedAt: now, expiresAt: now.addingTimeInterval(86_400))
    }

    /// Issues (or, within KIS's 6-hour window, re-fetches) a REST access token
    /// (`POST /oauth2/tokenP`). The expiry is `access_token_token_expired` read as Korea
    /// time, else `expires_in`.
    /// - Throws: ``KISError``; EGW00133 as ``KISError/Kind/rateLimited(retryAfter:)``.
    public func accessToken(environment: KISEnvironment, appkey: String, secret: String) async throws(KISError) -> AccessToken {
        let body = try await post(environment: environment, path: "/oauth2/tokenP",
                                  fields: ["grant_type": "client_credentials", "appkey": appkey, "appsecret": secret])
        let token = try Self.requiredText("access_token", in: body, path: "/oauth2/tokenP")
        guard KISShapes.isAccessToken(token) else {
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/tokenP with an access_token that is not in KIS's shape (\(token.utf8.count) bytes; expected a JWT of up to \(KISShapes.maxAccessToken)); nothing was stored", httpStatus: 200)
        }
        let now = Date()
        let expires: Date
        if let text = body["access_token_token_expired"] as? String, let date = KoreaTime.parse(text) {
            expires = date
        } else if let seconds = (body["expires_in"] as? NSNumber)?.doubleValue, seconds > 0 {
            expires = now.addingTimeInterval(seconds)
        } else {
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/tokenP without an expiry", httpStatus: 200)
        }
        let tokenType = (body["token_type"] as? String).flatMap { KISShapes.isWord($0) ? $0 : nil } ?? "Bearer"
        return AccessToken(token: token, tokenType: tokenType, issuedAt: now, expiresAt: expires)
    }

    /// The non-empty string `field` of a successful answer, or a malformed-response error
    /// naming the field (never its value).
    static func requiredText(_ field: String, in body: [String: Any], path: String) throws(KISError) -> String {
        guard let text = body[field] as? String, !text.isEmpty else {
            throw KISError(kind: .malformedResponse, message: "KIS answered \(path) without an \(field)", httpStatus: 200)
        }
        return text
    }

    /// Revokes an access token (`POST /oauth2/revokeP`).
    /// - Throws: ``KISError``; an unknown or expired token as ``KISError/Kind/tokenInvalid``.
    public func revoke(environment: KISEnvironment, appkey: String, secret: String, token: String) async throws(KISError) {
        _ = try await post(environment: environment, path: "/oauth2/revokeP",
                           fields: ["appkey": appkey, "appsecret": secret, "token": token])
    }

    /// Sends one request with retries; returns the decoded JSON object of a 2xx answer.
    func post(environment: KISEnvironment, path: String, fields: [String: String]) async throws(KISError) -> [String: Any] {
        let started = ContinuousClock.now
        var generator = SystemRandomNumberGenerator()
        var attempt = 1
        while true {
            do {
                return try await postOnce(environment: environment, path: path, fields: fields)
            } catch {
                let elapsed = (ContinuousClock.now - started) / .seconds(1)
                let policy = configuration.retry
                guard error.isRetryable, attempt < policy.maxAttempts else { throw error }
                let delay = policy.delay(after: attempt, using: &generator)
                guard elapsed + delay < policy.maxTotal else { throw error }
                logger.debug("retrying", metadata: ["path": "\(path)", "attempt": "\(attempt)", "error": "\(error)", "delay": "\(delay)"])
                do { try await Task.sleep(for: .seconds(delay)) } catch {
                    throw KISError(kind: .unavailable, message: "cancelled while waiting to retry \(path)")
                }
                attempt += 1
            }
        }
    }

    func postOnce(environment: KISEnvironment, path: String, fields: [String: String]) async throws(KISError) -> [String: Any] {
        if let limiter = limiters[environment] {
            do { try await limiter.acquire() } catch { throw KISError(kind: .unavailable, message: "cancelled") }
        }
        let base = configuration.endpoints.baseURL(for: environment)
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json; charset=utf-8")
        request.headers.add(name: "accept", value: "application/json")
        request.headers.add(name: "user-agent", value: configuration.userAgent)
        request.body = .bytes(ByteBuffer(string: Self.jsonObject(fields)))
        counter.increment()
        let status: Int
        let bytes: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Int64(configuration.requestTimeout * 1000)), logger: nil)
            status = Int(response.status.code)
            bytes = try await response.body.collect(upTo: configuration.maxBodyBytes)
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw KISError(kind: .malformedResponse, message: "KIS's answer to \(path) is larger than \(configuration.maxBodyBytes) bytes")
        } catch {
            throw Self.transportError(error, host: base, path: path)
        }
        return try Self.decode(status: status, body: Data(bytes.readableBytesView), path: path)
    }

    /// A flat JSON object of strings, keys sorted. Written by hand, byte by byte: it is
    /// built for every request of a bulk run, and JSONSerialization costs more than the
    /// rest of the request.
    static func jsonObject(_ fields: [String: String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(fields.reduce(2) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 })
        for (index, key) in fields.keys.sorted().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendJSONString(fields[key]!, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `text` as a JSON string literal. Multi-byte UTF-8 passes through unchanged
    /// (JSON is UTF-8); only the quote, the backslash and control characters are escaped.
    static func appendJSONString(_ text: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Turns a response into its JSON object or a classified ``KISError``.
    static func decode(status: Int, body: Data, path: String) throws(KISError) -> [String: Any] {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        if let object {
            // KIS's two error shapes: OAuth endpoints and data endpoints.
            if let code = object["error_code"] as? String {
                throw error(code: code, message: object["error_description"], status: status, path: path)
            }
            if let rt = object["rt_cd"] as? String, rt != "0", let code = object["msg_cd"] as? String {
                throw error(code: code, message: object["msg1"], status: status, path: path)
            }
            if (200..<300).contains(status) { return object }
        }
        if object != nil {
            // Well-formed JSON, but neither a success nor one of KIS's error shapes.
            throw KISError(kind: status >= 500 ? .retryable : .permanent,
                           message: "KIS answered \(path) with HTTP \(status) and JSON in neither of its error shapes", httpStatus: status)
        }
        let shape = body.isEmpty ? "an empty body"
            : body.first == UInt8(ascii: "<") ? "an HTML page (a proxy error?)" : "a body that is not complete JSON"
        throw KISError(kind: .malformedResponse, message: "KIS answered \(path) with HTTP \(status) and \(shape)", httpStatus: status)
    }

    /// A KIS error from one of its two shapes. The code and message come from the server
    /// and reach terminals and the vault: a code that is not KIS's shape (`EGW00133`) is
    /// not trusted, and the message loses its control characters and is cut to
    /// ``KISShapes/maxMessage`` characters.
    static func error(code: String, message: Any?, status: Int, path: String) -> KISError {
        let text = (message as? String).map(KISShapes.cleanMessage) ?? "KIS refused \(path)"
        guard KISShapes.isCode(code) else {
            return KISError(kind: status >= 500 ? .retryable : .permanent, code: nil,
                            message: "KIS refused \(path) with an error code not in KIS's shape: \(text)", httpStatus: status)
        }
        return KISError(kind: KISError.kind(forCode: code, status: status), code: code, message: text, httpStatus: status)
    }

    static func transportError(_ error: any Error, host: String, path: String) -> KISError {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
                return KISError(kind: .unavailable, message: "\(host) did not answer \(path) in time")
            }
            if error == .remoteConnectionClosed {
                return KISError(kind: .unavailable, message: "\(host) closed the connection during \(path)")
            }
        }
        if error is CancellationError {
            return KISError(kind: .unavailable, message: "\(path) was cancelled")
        }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") {
            return KISError(kind: .unavailable, message: "cannot connect to \(host): connection refused")
        }
        return KISError(kind: .unavailable, message: "cannot reach \(host) for \(path): \(type(of: error))")
    }
}

/// A thread-safe counter.
final class RequestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// A flag that can be set once; `setOnce` says whether this call set it.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    func setOnce() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if set { return false }
        set = true
        return true
    }
}
