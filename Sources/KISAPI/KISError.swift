import Foundation

/// One failure talking to KIS, from either of KIS's error shapes or from the transport.
/// Its text never contains an appkey, appsecret, approval key or token.
public struct KISError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What a caller should do about it.
    public enum Kind: Sendable, Equatable {
        /// Temporary (EGW00001, EGW00002, EGW00201, 5xx, timeouts, dropped connections):
        /// retry with backoff.
        case retryable
        /// EGW00133: a token was issued for this appkey less than a minute ago (the wait is
        /// the manager's, from when the last one was issued: KISFacts.tokenIssueInterval).
        case rateLimited
        /// EGW00102-EGW00105: the appkey or appsecret is missing or wrong; never retry.
        case credentialsRejected
        /// EGW00121-EGW00123: re-issue the token, then retry once.
        case tokenInvalid
        /// Anything else KIS refused (EGW00132, EGW00206, EGW00207, unknown codes).
        case permanent
        /// A body in neither of KIS's shapes (HTML, empty, truncated, missing field).
        case malformedResponse
        /// The host could not be reached or did not answer in time.
        case unavailable
    }

    public var kind: Kind
    /// KIS's code (`EGW00133`), when KIS sent one.
    public var code: String?
    /// KIS's message, or ours for transport and format failures.
    public var message: String
    /// The HTTP status, when a response arrived.
    public var httpStatus: Int?

    public init(kind: Kind, code: String? = nil, message: String, httpStatus: Int? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
    }

    /// True for EGW00133, whatever retry-after it carries.
    public var isRateLimited: Bool {
        if case .rateLimited = kind { return true }
        return false
    }

    /// True when trying again later may succeed.
    public var isRetryable: Bool {
        switch kind {
        case .retryable, .malformedResponse, .unavailable: return true
        default: return false
        }
    }

    public var description: String {
        var parts: [String] = []
        if let code { parts.append(code) }
        if let httpStatus { parts.append("HTTP \(httpStatus)") }
        let head = parts.isEmpty ? "" : "[\(parts.joined(separator: ", "))] "
        return head + message
    }

    /// Classifies a KIS error code (KIS-API.md's table).
    public static func kind(forCode code: String, status: Int) -> Kind {
        switch code {
        case "EGW00001", "EGW00002", "EGW00201": return .retryable
        case "EGW00133": return .rateLimited
        case "EGW00102", "EGW00103", "EGW00104", "EGW00105": return .credentialsRejected
        case "EGW00121", "EGW00122", "EGW00123": return .tokenInvalid
        default: return status >= 500 ? .retryable : .permanent
        }
    }
}

/// A short form of a credential for logs and messages: first four and last three
/// characters (`PSab…uus`), or only the length for short values.
public func maskCredential(_ value: String) -> String {
    guard value.count >= 12 else { return "(\(value.count) chars)" }
    return "\(value.prefix(4))…\(value.suffix(3))"
}
