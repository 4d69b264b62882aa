import Foundation
import NetworkRules
#if canImport(Glibc)
import Glibc
#endif

/// The two KIS hosts. An account belongs to exactly one; a real appkey does not work on
/// the mock host and vice versa.
public enum KISEnvironment: String, Sendable, CaseIterable, Codable {
    /// 실전: real trading.
    case real
    /// 모의: paper trading.
    case mock

    /// KIS's REST base URL for this environment (KIS-API.md, "Hosts").
    public var defaultBaseURL: String {
        switch self {
        case .real: return "https://openapi.koreainvestment.com:9443"
        case .mock: return "https://openapivts.koreainvestment.com:29443"
        }
    }

    /// KIS's WebSocket URL for this environment.
    public var webSocketURL: String {
        switch self {
        case .real: return "ws://ops.koreainvestment.com:21000"
        case .mock: return "ws://ops.koreainvestment.com:31000"
        }
    }
}

/// Where each environment's requests go. Defaults to KIS's hosts; tests, benchmarks and
/// the demo point both at `kis-mock`.
public struct KISEndpoints: Sendable, Equatable {
    public var real: String
    public var mock: String
    /// The WebSocket URLs. Unless set on their own they follow the REST URLs: KIS's
    /// WebSocket hosts for KIS's REST hosts, else the same host and port (`ws://` for
    /// `http://`, `wss://` for `https://`), so a `kis-mock` gets its own.
    public var realWebSocket: String
    public var mockWebSocket: String

    public init(real: String = KISEnvironment.real.defaultBaseURL, mock: String = KISEnvironment.mock.defaultBaseURL,
                realWebSocket: String? = nil, mockWebSocket: String? = nil) {
        self.real = real
        self.mock = mock
        self.realWebSocket = realWebSocket ?? Self.webSocket(following: real, environment: .real)
        self.mockWebSocket = mockWebSocket ?? Self.webSocket(following: mock, environment: .mock)
    }

    /// One base URL for both environments (a single `kis-mock`).
    public init(both url: String) { self.init(real: url, mock: url) }

    public func baseURL(for environment: KISEnvironment) -> String {
        environment == .real ? real : mock
    }

    /// The WebSocket URL that goes with a REST base URL.
    static func webSocket(following rest: String, environment: KISEnvironment) -> String {
        if rest == environment.defaultBaseURL { return environment.webSocketURL }
        // By hand, not with URLComponents (whose scheme setter decodes the host through
        // ICU: 6 ms of every command's start). The scheme swapped, path and query dropped.
        guard let authority = URLText.authority(of: rest) else { return rest }
        let scheme = rest.prefix { $0 != ":" }.lowercased() == "http" ? "ws" : "wss"
        return scheme + "://" + rest[authority]
    }

    /// The endpoints from the environment: `KISVAULT_KIS_BASE_URL` for both, then
    /// `KISVAULT_KIS_REAL_URL` / `KISVAULT_KIS_MOCK_URL` per environment.
    /// - Throws: ``KISConfigurationError`` for a URL that is not https (or http on loopback).
    /// The WebSocket URLs follow the REST ones unless `KISVAULT_KIS_WS_URL` (both) or
    /// `KISVAULT_KIS_REAL_WS_URL` / `KISVAULT_KIS_MOCK_WS_URL` name them.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws(KISConfigurationError) -> KISEndpoints {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        let both = value("KISVAULT_KIS_BASE_URL")
        let bothWS = value("KISVAULT_KIS_WS_URL")
        let endpoints = KISEndpoints(
            real: value("KISVAULT_KIS_REAL_URL") ?? both ?? KISEnvironment.real.defaultBaseURL,
            mock: value("KISVAULT_KIS_MOCK_URL") ?? both ?? KISEnvironment.mock.defaultBaseURL,
            realWebSocket: value("KISVAULT_KIS_REAL_WS_URL") ?? bothWS,
            mockWebSocket: value("KISVAULT_KIS_MOCK_WS_URL") ?? bothWS)
        try endpoints.validate()
        return endpoints
    }

    /// Refuses anything but `https://`, except `http://` to loopback: a secret never
    /// crosses a network unencrypted.
    public func validate() throws(KISConfigurationError) {
        for url in [real, mock] { try Self.validate(url) }
        for url in [realWebSocket, mockWebSocket] { try Self.validate(url, webSocket: true) }
    }

    /// The rule for one URL (SECURITY.md, "Never over plain HTTP"):
    /// - `https://` to any host;
    /// - `http://` only to a literal loopback address (`127.0.0.0/8` in dotted-quad form,
    ///   `[::1]`), or to `localhost` when every address it resolves to is loopback. The
    ///   host *name* is never trusted: `127.0.0.1.evil.test` is a name, not an address;
    /// - no `user:password@` part (KIS uses none, and it would end up in messages).
    /// Error messages show the URL without any credentials it carried.
    ///
    /// WebSocket URLs follow the same rule with `wss://` and `ws://`, and `ws://` is also
    /// allowed to KIS's own WebSocket hosts, which KIS serves only unencrypted (KIS-API.md).
    static func validate(_ text: String, webSocket: Bool = false) throws(KISConfigurationError) {
        let shown = URLText.redacted(text)
        // The host as written: URLComponents' `host` decodes IDNA through ICU, whose start
        // alone was 6 ms of every CLI command (BENCHMARKS, "thin client"). KIS's hosts and
        // loopback addresses are ASCII; any other host is judged by its written form.
        guard let parts = URLComponents(string: text), let scheme = parts.scheme?.lowercased(),
              let host = URLText.writtenHost(text)?.lowercased(), !host.isEmpty else {
            throw KISConfigurationError(description: "'\(shown)' is not a URL; use https://host[:port]")
        }
        if parts.percentEncodedUser != nil || parts.percentEncodedPassword != nil {
            throw KISConfigurationError(description: "refusing \(shown): a URL for KIS must not carry a user name or password")
        }
        let secure = webSocket ? "wss" : "https", plain = webSocket ? "ws" : "http"
        if webSocket && scheme == "ws" && KISEnvironment.allCases.contains(where: { $0.webSocketURL == text }) { return }
        switch scheme {
        case secure:
            return
        case plain:
            guard isLoopback(host: host) else {
                throw KISConfigurationError(description: "refusing plain \(plain):// to \(URLText.printable(host)): secrets would cross the network unencrypted; use \(secure):// (\(plain) is allowed only to 127.0.0.1, [::1] or localhost, for local test servers)")
            }
        default:
            throw KISConfigurationError(description: "unsupported scheme '\(URLText.printable(scheme))' in \(shown); use \(secure)://")
        }
    }

    /// True for a literal loopback address, or `localhost` resolving to loopback only
    /// (``Loopback/isLoopback(host:)``: the one place that decides it).
    public static func isLoopback(host: String) -> Bool { Loopback.isLoopback(host: host) }
}

/// A base URL that is not acceptable.
public struct KISConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
}
