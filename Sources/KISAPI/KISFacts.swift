import Foundation

/// KIS's rules for the credentials kisvault manages, written once (docs/KIS-API.md).
public enum KISFacts {
    /// An approval key lives 24 hours from issuance; KIS's answer carries no expiry.
    public static let approvalKeyLifetime: TimeInterval = 86_400
    /// An individual customer's access token lives 24 hours.
    public static let tokenLifetime: TimeInterval = 86_400
    /// The longest lifetime an answer may claim: a day and an hour of slack for clocks.
    /// An expiry beyond it (or at or before now) is malformed, not stored: a year-9999
    /// token would never be renewed, a past one handed out as fresh. (KIS-API.md mentions
    /// 90-day tokens for corporate partners; kisvault manages individual appkeys.)
    public static let longestTokenLifetime: TimeInterval = 25 * 3600
    /// At most one token issuance per appkey per this interval (EGW00133 otherwise).
    public static let tokenIssueInterval: TimeInterval = 60
    /// Asking again within this window returns the same token.
    public static let sameTokenWindow: TimeInterval = 6 * 3600
    /// The shortest lifetime of any credential kisvault hands out: a `--min-ttl` at or
    /// beyond it could never be met.
    public static let shortestLifetime: TimeInterval = min(approvalKeyLifetime, tokenLifetime)
}
