import Foundation
import KISAPI
import VaultStore

/// Failures of the key manager, each naming the account and what to do.
public enum KeyManagerError: Error, Sendable, CustomStringConvertible {
    /// KIS refused a request (the wrapped error says how).
    case kis(account: String, KISError)
    /// KIS rejected this account's appkey/appsecret earlier; no request is sent until the
    /// secrets are edited.
    case previouslyRejected(account: String, code: String, message: String)
    /// A token was requested for this appkey less than a minute ago and waiting was not
    /// allowed (`--no-wait`).
    case mustWait(account: String, seconds: Int)
    /// Another process held the issuance lease for too long.
    case leaseTimeout(account: String, seconds: Int)
    /// No stored credential to act on (revoke without a token).
    case nothingStored(account: String, kind: CredentialKind)
    /// The run was interrupted while the account still waited (another process's lease,
    /// KIS's minute): nothing was sent for it.
    case interrupted(account: String, reason: String)

    public var description: String {
        switch self {
        case .kis(let account, let error):
            switch error.kind {
            case .credentialsRejected:
                return "KIS rejected the appkey/appsecret of '\(account)' (\(error)); fix them with 'kisvault account edit \(account) --rotate-secret'"
            case .rateLimited:
                // kisvault's own clock had allowed the request, so the token of the last
                // minute was asked for by another program with this appkey.
                return "KIS refused a token for '\(account)': another program asked KIS for a token with this appkey in the last minute (\(error)); let that program take kisvault's token instead ('kisvault token export \(account) --format kis-sample', or run it under 'kisvault exec \(account) --kis-sample'; docs/INTEGRATIONS.md), then try again in a minute"
            case .tokenInvalid:
                return "KIS says the token of '\(account)' is not valid (\(error)); issue a new one with 'kisvault token rotate \(account)'"
            case .permanent:
                return "KIS refused the request for '\(account)' (\(error)); check the account's permissions and allowed IP addresses"
            case .retryable, .malformedResponse, .unavailable:
                return "KIS is unavailable for '\(account)' (\(error)); try again later"
            }
        case .previouslyRejected(let account, let code, _):
            return "KIS rejected the appkey/appsecret of '\(account)' earlier (\(code)); no request was sent. Fix them with 'kisvault account edit \(account) --rotate-secret'"
        case .mustWait(let account, let seconds):
            return "a token for '\(account)' was requested less than a minute ago; KIS allows one a minute: wait \(seconds) s (or drop --no-wait)"
        case .leaseTimeout(let account, let seconds):
            return "another kisvault process has been issuing for '\(account)' for over \(seconds) s; try again, or check for a stuck process"
        case .nothingStored(let account, let kind):
            return "no \(kind == .token ? "access token" : "approval key") is stored for '\(account)'"
        case .interrupted(_, let reason):
            return "not attempted: \(reason)"
        }
    }

    /// The KIS error code, when there is one.
    public var code: String? {
        switch self {
        case .kis(_, let error): return error.code ?? (error.kind == .unavailable ? BulkItemResult.unavailableCode : "malformed")
        case .previouslyRejected(_, let code, _): return code
        case .mustWait: return "EGW00133"
        case .leaseTimeout: return "lease-timeout"
        case .nothingStored: return BulkItemResult.notFoundCode
        case .interrupted: return BulkItemResult.notAttemptedCode
        }
    }
}
