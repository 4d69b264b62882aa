import ArgumentParser
import Foundation
import CredentialService

/// Errors raised by the CLI layer itself.
public enum CLIError: Error, CustomStringConvertible, Sendable {
    /// No passphrase source and no terminal to prompt on.
    case noPassphrase
    /// The two passphrases typed at `init` or `passphrase change` differ.
    case passphraseMismatch
    /// An empty passphrase was given.
    case emptyPassphrase
    /// Bad input that is not a vault rule (a file that cannot be read, a bad value).
    case badInput(String)
    /// The user declined a confirmation.
    case declined(String)
    /// Standard output is closed or a write to it failed (a full disk, a closed descriptor).
    case output(String)
    /// The reader of standard output went away (EPIPE): no message, exit 141.
    case readerGone
    /// A file kisvault was asked to write or read could not be (a missing directory, a
    /// device): an I/O failure, not bad input.
    case io(String)
    /// The passphrase source exists but cannot be read, or gave an empty passphrase.
    case passphraseSource(String)
    /// Something the command needs is not there (no agent to unlock).
    case notFound(String)
    /// The command has printed its report (a check, a bulk run) and ends with the status of
    /// `code`; nothing more to say.
    case reported(ErrorCode)
    /// A bulk run was interrupted (Ctrl-C, SIGTERM) after printing its partial report.
    case interrupted

    public var description: String {
        switch self {
        case .noPassphrase:
            return "no passphrase: run in a terminal to be asked, or give --passphrase-file FILE, --passphrase-fd N or KISVAULT_PASSPHRASE"
        case .passphraseMismatch:
            return "the passphrases do not match; nothing was changed, try again"
        case .emptyPassphrase:
            return "the passphrase is empty; choose a real passphrase"
        case .badInput(let text):
            return text
        case .declined(let text), .output(let text), .io(let text), .passphraseSource(let text), .notFound(let text):
            return text
        case .readerGone:
            return "standard output's reader went away"
        case .reported(let code):
            return "failed: \(code.exitSummary)"
        case .interrupted:
            return "interrupted"
        }
    }

    /// Its row of the one table (``ErrorCode``); nil for the two ends that are not errors: a
    /// reader that went away and an interrupted run.
    var code: ErrorCode? {
        switch self {
        case .noPassphrase, .passphraseSource: .locked
        case .passphraseMismatch, .emptyPassphrase, .badInput, .declined: .badRequest
        case .output, .io: .vaultError
        case .notFound: .notFound
        case .reported(let code): code
        case .readerGone, .interrupted: nil
        }
    }

    /// Its exit status, from ``ErrorCode``'s table.
    var exitStatus: Int32 {
        switch self {
        case .readerGone: ErrorCode.readerGoneStatus
        case .interrupted: ErrorCode.interruptedStatus
        default: code?.exitStatus ?? ErrorCode.vaultError.exitStatus
        }
    }

    /// True when the command has already said what there is to say.
    var isQuiet: Bool {
        switch self {
        case .readerGone, .reported, .interrupted: true
        default: false
        }
    }
}

/// Maps any error to its exit status, writing its message to stderr. The one place errors
/// become exit statuses; the statuses themselves come from ``ErrorCode``.
func report(_ error: any Error) -> Int32 {
    switch error {
    case let error as CLIError:
        // A reader that went away (`| head`) has all it wanted: nothing to say, as tools
        // people pipe do; a printed report has said it all.
        if !error.isQuiet { Terminal.note(error.description) }
        return error.exitStatus
    case let error as AgentError:
        Terminal.note(error.description)
        return error.code.exitStatus
    case let error as ServiceError:
        Terminal.note(error.description)
        return error.code.exitStatus
    default:
        guard let code = ErrorCode.of(error) else {
            Terminal.note("unexpected error: \(error)")
            return ErrorCode.vaultError.exitStatus
        }
        Terminal.note("\(error)")
        return code.exitStatus
    }
}
