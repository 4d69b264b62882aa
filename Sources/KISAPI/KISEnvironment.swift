import Foundation

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

    public init(real: String = KISEnvironment.real.defaultBaseURL, mock: String = KISEnvironment.mock.defaultBaseURL) {
        self.real = real
        self.mock = mock
    }

    /// One base URL for both environments (a single `kis-mock`).
    public init(both url: String) { self.init(real: url, mock: url) }

    public func baseURL(for environment: KISEnvironment) -> String {
        environment == .real ? real : mock
    }

    /// The endpoints from the environment: `KISVAULT_KIS_BASE_URL` for both, then
    /// `KISVAULT_KIS_REAL_URL` / `KISVAULT_KIS_MOCK_URL` per environment.
    /// - Throws: ``KISConfigurationError`` for a URL that is not https (or http on loopback).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws(KISConfigurationError) -> KISEndpoints {
        var endpoints = KISEndpoints()
        if let both = env["KISVAULT_KIS_BASE_URL"], !both.isEmpty { endpoints = KISEndpoints(both: both) }
        if let real = env["KISVAULT_KIS_REAL_URL"], !real.isEmpty { endpoints.real = real }
        if let mock = env["KISVAULT_KIS_MOCK_URL"], !mock.isEmpty { endpoints.mock = mock }
        try endpoints.validate()
        return endpoints
    }

    /// Refuses anything but `https://`, except `http://` to a loopback host: a secret never
    /// crosses a network unencrypted.
    public func validate() throws(KISConfigurationError) {
        for url in [real, mock] { try Self.validate(url) }
    }

    static func validate(_ text: String) throws(KISConfigurationError) {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased(), !host.isEmpty else {
            throw KISConfigurationError(description: "'\(text)' is not a URL; use https://host[:port]")
        }
        switch scheme {
        case "https":
            return
        case "http":
            let loopback = host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
            guard loopback else {
                throw KISConfigurationError(description: "refusing plain http:// to \(host): secrets would cross the network unencrypted; use https:// (http is allowed only for loopback test servers)")
            }
        default:
            throw KISConfigurationError(description: "unsupported scheme '\(scheme)' in \(text); use https://")
        }
    }
}

/// A base URL that is not acceptable.
public struct KISConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
}
