import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

/// kisvault's stable error codes: what the agent answers in `{"error": CODE}` and what the
/// CLI turns into its exit status. The one table from an error to an exit code and an
/// HTTP status is ``exitStatus`` and ``httpStatus`` here (docs/CLI.md, "Exit codes" and
/// "The agent").
public enum ErrorCode: String, Sendable, Codable, CaseIterable {
    /// Bad arguments or bad input.
    case badRequest = "bad_request"
    /// Wrong passphrase, no passphrase, or a locked agent.
    case locked
    /// No vault, account, keyslot or stored credential.
    case notFound = "not_found"
    /// The agent serves another user.
    case forbidden
    /// KIS rejected the credentials, the token or the request.
    case kisRejected = "kis_rejected"
    /// The network or KIS is unavailable (or the once-a-minute limit with --no-wait).
    case kisUnavailable = "kis_unavailable"
    /// The agent's vault file or its write-ahead log was replaced or deleted.
    case vaultChanged = "vault_changed"
    /// The caller and the agent talk to different KIS hosts.
    case kisURLsDiffer = "kis_urls_differ"
    /// The request names a vault the agent does not hold.
    case vaultDiffers = "vault_differs"
    /// The vault is damaged, busy, read-only, or another I/O failure.
    case vaultError = "vault_error"
    /// A bulk run finished with some accounts failed.
    case partial

    /// The CLI's exit status for this code.
    public var exitStatus: Int32 {
        switch self {
        case .vaultError, .vaultChanged, .kisURLsDiffer, .vaultDiffers, .forbidden: return 1
        case .badRequest: return 2
        case .locked: return 3
        case .notFound: return 4
        case .kisRejected: return 5
        case .kisUnavailable: return 6
        case .partial: return 7
        }
    }

    /// What the exit status of this code means, in the words of the help text's line.
    public var exitSummary: String {
        switch self {
        case .vaultError, .vaultChanged, .kisURLsDiffer, .vaultDiffers, .forbidden: return "vault damaged/busy/read-only or I/O failure"
        case .badRequest: return "usage or bad input"
        case .locked: return "wrong passphrase or locked"
        case .notFound: return "not found"
        case .kisRejected: return "KIS rejected the credentials"
        case .kisUnavailable: return "network or KIS unavailable"
        case .partial: return "partial failure of a bulk run"
        }
    }

    /// The CLI's exit status when it succeeds.
    public static let successStatus: Int32 = 0
    /// When a bulk run is interrupted (Ctrl-C, SIGTERM) and its partial report printed: the
    /// status a shell gives a process ended by SIGINT. Not an error code: nothing failed.
    public static let interruptedStatus: Int32 = 130
    /// When standard output's reader went away (`| head`): the status of a process killed by
    /// SIGPIPE, as `ls` or `git` give. Not an error code: the reader has what it wanted.
    public static let readerGoneStatus: Int32 = 141

    /// Every exit status the CLI uses and what it means, in order: the one table the help
    /// text's line is written from and docs/CLI.md's table is checked against.
    public static let exitStatuses: [(status: Int32, meaning: String)] = {
        var rows: [Int32: String] = [successStatus: "success", interruptedStatus: "interrupted", readerGoneStatus: "output's reader gone"]
        for code in allCases where rows[code.exitStatus] == nil { rows[code.exitStatus] = code.exitSummary }
        return rows.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }()

    /// The help text's line: "Exit codes: 0 success, 1 ..., 141 output's reader gone."
    public static var exitStatusLine: String {
        "Exit codes: " + exitStatuses.map { "\($0.status) \($0.meaning)" }.joined(separator: ", ") + "."
    }

    /// The agent's HTTP status for this code.
    public var httpStatus: Int {
        switch self {
        case .badRequest: return 400
        case .forbidden: return 403
        case .notFound: return 404
        case .vaultChanged, .kisURLsDiffer, .vaultDiffers: return 409
        case .locked: return 423
        case .vaultError: return 500
        case .kisRejected: return 502
        case .kisUnavailable: return 503
        case .partial: return 207
        }
    }

    /// The code of an error of the vault, the manager or the KIS configuration; nil for an
    /// error of another kind.
    public static func of(_ error: any Error) -> ErrorCode? {
        switch error {
        case let error as VaultError:
            switch error {
            case .vaultNotFound, .accountNotFound, .keyslotNotFound:
                return .notFound
            case .wrongPassphrase, .foreignKeyslot:
                return .locked
            case .vaultExists, .staleFiles, .accountExists, .duplicateAppkey, .invalidAccount, .invalidName, .keyslotExists,
                 .lastKeyslot, .importRejected, .invalidLocation:
                return .badRequest
            case .notAVault, .newerFormat, .damaged, .fieldAuthenticationFailed, .readOnly, .busy, .io, .walMissing, .unreachable, .commitUnknown,
                 .rolledBack, .historyDiffers:
                return .vaultError
            }
        case let error as KeyManagerError:
            switch error {
            case .kis(_, let kis):
                switch kis.kind {
                case .credentialsRejected, .tokenInvalid, .permanent: return .kisRejected
                case .retryable, .malformedResponse, .unavailable, .rateLimited: return .kisUnavailable
                }
            case .previouslyRejected: return .kisRejected
            case .mustWait, .leaseTimeout, .interrupted: return .kisUnavailable
            case .nothingStored: return .notFound
            }
        case is KISConfigurationError, is Recipient.Refusal:
            return .badRequest
        case let problem as IdentityFile.Problem:
            switch problem {
            case .notAnIdentity: return .badRequest
            case .needsPassphrase, .wrongPassphrase: return .locked
            case .keyDerivationFailed: return .vaultError
            }
        default:
            return nil
        }
    }
}
