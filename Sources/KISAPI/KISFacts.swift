import Foundation

/// KIS's rules for the credentials kisvault manages, written once (docs/KIS-API.md).
public enum KISFacts {
    /// An approval key lives 24 hours from issuance; KIS's answer carries no expiry.
    public static let approvalKeyLifetime: TimeInterval = 86_400
    /// An individual customer's access token lives 24 hours.
    public static let tokenLifetime: TimeInterval = 86_400
    /// The longest a token may live (corporate partners: up to 90 days); an `expires_in`
    /// beyond it is not believed.
    public static let longestTokenLifetime: TimeInterval = 90 * 86_400
    /// At most one token issuance per appkey per this interval (EGW00133 otherwise).
    public static let tokenIssueInterval: TimeInterval = 60
    /// Asking again within this window returns the same token.
    public static let sameTokenWindow: TimeInterval = 6 * 3600
    /// The shortest lifetime of any credential kisvault hands out: a `--min-ttl` at or
    /// beyond it could never be met.
    public static let shortestLifetime: TimeInterval = min(approvalKeyLifetime, tokenLifetime)
}
