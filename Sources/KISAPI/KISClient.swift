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
    /// Told of every request's end: its path, its outcome (`ok`, KIS's code, or
    /// `unavailable`/`malformed`) and how long it took (the agent's metrics).
    public var observer: (@Sendable (_ path: String, _ outcome: String, _ seconds: Double) -> Void)?

    public init(endpoints: KISEndpoints) {
        self.endpoints = endpoints
    }

    /// The longest one call waits for KIS, retries included (`--timeout`): the retry
    /// policy's total, and no single request longer than that.
    public var totalTimeout: TimeInterval {
        get { retry.maxTotal }
        set {
            retry.maxTotal = newValue
            requestTimeout = min(15, newValue)
            connectTimeout = min(5, newValue)
        }
    }
}

/// kisvault's version: in `User-Agent`, `kisvault --version` and the package
/// (scripts/make-deb.sh reads it here). Written once.
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
        // A refused connection fails the attempt at once: the retry loop here backs off,
        // logs each retry (--verbose) and stops at --timeout, where the pool's own silent
        // reconnecting held a request until the connect timeout passed.
        http.connectionPool.retryConnectionEstablishment = false
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
    public func approvalKey(environment: KISEnvironment, appkey: String, secret: String,
                            now: @Sendable () -> Date = { Date() }) async throws(KISError) -> ApprovalKey {
        let body = try await post(environment: environment, path: "/oauth2/Approval",
                                  fields: ["grant_type": "client_credentials", "appkey": appkey, "secretkey": secret])
        return try KISResponse.approvalKey(from: body, now: now())
    }

    /// Issues (or, within KIS's 6-hour window, re-fetches) a REST access token
    /// (`POST /oauth2/tokenP`). The expiry is `access_token_token_expired` read as Korea
    /// time, else `expires_in`, judged by `now` (the caller's clock, read when the answer
    /// arrives): a lifetime outside (0, 25 h] is a malformed answer.
    /// - Throws: ``KISError``; EGW00133 as ``KISError/Kind/rateLimited``.
    public func accessToken(environment: KISEnvironment, appkey: String, secret: String,
                            now: @Sendable () -> Date = { Date() }) async throws(KISError) -> AccessToken {
        let body = try await post(environment: environment, path: "/oauth2/tokenP",
                                  fields: ["grant_type": "client_credentials", "appkey": appkey, "appsecret": secret])
        return try KISResponse.accessToken(from: body, now: now())
    }

    /// Revokes an access token (`POST /oauth2/revokeP`).
    /// - Throws: ``KISError``; an unknown or expired token as ``KISError/Kind/tokenInvalid``.
    public func revoke(environment: KISEnvironment, appkey: String, secret: String, token: String) async throws(KISError) {
        _ = try await post(environment: environment, path: "/oauth2/revokeP",
                           fields: ["appkey": appkey, "appsecret": secret, "token": token])
    }

    /// The path and stock code `checkToken` asks for: the current price of one stock,
    /// the cheapest data call there is.
    public static let tokenCheckPath = "/uapi/domestic-stock/v1/quotations/inquire-price"

    /// Calls one cheap data endpoint (the quote of 005930, `tr_id` FHKST01010100) with
    /// `token`, and returns when KIS accepts it.
    /// - Throws: ``KISError``; a refused token as ``KISError/Kind/tokenInvalid`` with
    ///   EGW00121 (invalid), EGW00122 (not found) or EGW00123 (expired).
    public func checkToken(environment: KISEnvironment, appkey: String, secret: String, token: String) async throws(KISError) {
        let path = Self.tokenCheckPath
        _ = try await withRetries(path: path) { (deadline) async throws(KISError) -> [String: Any] in
            var request = HTTPClientRequest(url: configuration.endpoints.baseURL(for: environment) + path + "?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930")
            request.method = .GET
            request.headers.add(name: "content-type", value: "application/json; charset=utf-8")
            request.headers.add(name: "authorization", value: "Bearer " + token)
            request.headers.add(name: "appkey", value: appkey)
            request.headers.add(name: "appsecret", value: secret)
            request.headers.add(name: "tr_id", value: "FHKST01010100")
            request.headers.add(name: "custtype", value: "P")
            return try await send(request, environment: environment, path: path, by: deadline)
        }
    }

    /// Sends one request with retries; returns the decoded JSON object of a 2xx answer.
    func post(environment: KISEnvironment, path: String, fields: [String: String]) async throws(KISError) -> [String: Any] {
        try await withRetries(path: path) { (deadline) async throws(KISError) -> [String: Any] in
            try await postOnce(environment: environment, path: path, fields: fields, by: deadline)
        }
    }

    /// `once` until it succeeds, fails for good, or the retry policy's attempts or time
    /// run out. The policy's total (`--timeout`) is a deadline for the whole call: each
    /// attempt gets what is left of it, answer body included.
    func withRetries(path: String, _ once: (ContinuousClock.Instant) async throws(KISError) -> [String: Any]) async throws(KISError) -> [String: Any] {
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int64(configuration.retry.maxTotal * 1000))
        var generator = SystemRandomNumberGenerator()
        var attempt = 1
        while true {
            do {
                return try await once(deadline)
            } catch {
                let elapsed = (ContinuousClock.now - started) / .seconds(1)
                let policy = configuration.retry
                guard error.isRetryable, attempt < policy.maxAttempts else { throw error }
                let delay = policy.delay(after: attempt, using: &generator)
                guard elapsed + delay < policy.maxTotal else { throw error }
                logger.info("retrying \(path) in \(String(format: "%.1f", delay)) s (attempt \(attempt + 1) of \(policy.maxAttempts), at most \(Int(policy.maxTotal)) s in all): \(error)")
                do { try await Task.sleep(for: .seconds(delay)) } catch {
                    throw KISError(kind: .unavailable, message: "cancelled while waiting to retry \(path)")
                }
                attempt += 1
            }
        }
    }

    func postOnce(environment: KISEnvironment, path: String, fields: [String: String], by deadline: ContinuousClock.Instant) async throws(KISError) -> [String: Any] {
        var request = HTTPClientRequest(url: configuration.endpoints.baseURL(for: environment) + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json; charset=utf-8")
        request.body = .bytes(ByteBuffer(string: Self.jsonObject(fields)))
        return try await send(request, environment: environment, path: path, by: deadline)
    }

    /// Sends `request` once, after the host's rate limiter, and decodes the answer; the
    /// whole exchange ends by `deadline` or one request timeout, whichever comes first.
    func send(_ request: HTTPClientRequest, environment: KISEnvironment, path: String, by deadline: ContinuousClock.Instant) async throws(KISError) -> [String: Any] {
        guard let observer = configuration.observer else { return try await sendOnce(request, environment: environment, path: path, by: deadline) }
        let started = ContinuousClock.now
        do {
            let answer = try await sendOnce(request, environment: environment, path: path, by: deadline)
            observer(path, "ok", (ContinuousClock.now - started) / .seconds(1))
            return answer
        } catch {
            let outcome = error.code ?? (error.kind == .malformedResponse ? "malformed" : "unavailable")
            observer(path, outcome, (ContinuousClock.now - started) / .seconds(1))
            throw error
        }
    }

    func sendOnce(_ request: HTTPClientRequest, environment: KISEnvironment, path: String, by deadline: ContinuousClock.Instant) async throws(KISError) -> [String: Any] {
        if let limiter = limiters[environment] {
            do { try await limiter.acquire() } catch { throw KISError(kind: .unavailable, message: "cancelled") }
        }
        let base = configuration.endpoints.baseURL(for: environment)
        var request = request
        request.headers.add(name: "accept", value: "application/json")
        request.headers.add(name: "user-agent", value: configuration.userAgent)
        counter.increment()
        let status: Int
        let bytes: ByteBuffer
        do {
            let end = min(deadline, ContinuousClock.now + .milliseconds(Int64(configuration.requestTimeout * 1000)))
            let left = max(0, ContinuousClock.now.duration(to: end) / .seconds(1))
            let response = try await http.execute(request, deadline: .now() + .milliseconds(Int64(left * 1000)), logger: nil)
            status = Int(response.status.code)
            bytes = try await Self.collect(response.body, upTo: configuration.maxBodyBytes, by: end)
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw KISError(kind: .malformedResponse, message: "KIS's answer to \(path) is larger than \(configuration.maxBodyBytes) bytes")
        } catch {
            throw Self.transportError(error, host: base, path: path)
        }
        return try KISResponse.decode(status: status, body: Data(bytes.readableBytesView), path: path)
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

    /// The whole body by `end`. The client's read timeout restarts with every byte, so a
    /// server sending one every few seconds would hold the call for as long as it liked.
    static func collect(_ body: HTTPClientResponse.Body, upTo limit: Int, by end: ContinuousClock.Instant) async throws -> ByteBuffer {
        try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask { try await body.collect(upTo: limit) }
            group.addTask {
                try await Task.sleep(until: end, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let bytes = first else { throw HTTPClientError.deadlineExceeded }
            return bytes
        }
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
