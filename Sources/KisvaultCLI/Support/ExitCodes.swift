import ArgumentParser
import Foundation
import CredentialService
import CredentialService
import KisvaultAgent
import VaultStore

/// kisvault's exit codes: few and stable (docs/CLI.md). Every error maps to one here.
public enum KisvaultExit: Int32, Sendable, CaseIterable {
    case success = 0
    /// The vault is damaged, busy, read-only, or an I/O or internal failure happened.
    case failure = 1
    /// Bad arguments or bad input (invalid names, credentials, import rows, conflicts).
    case usage = 2
    /// Wrong passphrase, no passphrase available, or the vault/agent is locked.
    case locked = 3
    /// The vault, an account or a keyslot does not exist.
    case notFound = 4
    /// KIS rejected the account's appkey or appsecret.
    case rejected = 5
    /// The network or KIS is unavailable.
    case unavailable = 6
    /// A bulk run finished with some accounts failed.
    case partial = 7
    /// A bulk run interrupted (Ctrl-C, SIGTERM): the partial report was printed. The status
    /// a shell gives a process ended by SIGINT.
    case interrupted = 130
    /// Standard output's reader went away (`kisvault account list | head`): ended quietly
    /// with the status a process killed by SIGPIPE gives its shell, as `ls` or `git` do.
    case readerGone = 141
}

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
        }
    }

    /// Its row of the one table (``ErrorCode``); nil only for a reader that went away,
    /// which is not an error but exit 141.
    var code: ErrorCode? {
        switch self {
        case .noPassphrase, .passphraseSource: .locked
        case .passphraseMismatch, .emptyPassphrase, .badInput, .declined: .badRequest
        case .output, .io: .vaultError
        case .notFound: .notFound
        case .readerGone: nil
        }
    }

    var exit: KisvaultExit { code.map(KisvaultExit.init) ?? .readerGone }
}

extension KisvaultExit {
    /// The exit status of an error code (``ErrorCode/exitStatus``, the table the agent's
    /// HTTP statuses come from too).
    init(_ code: ErrorCode) {
        self = KisvaultExit(rawValue: code.exitStatus) ?? .failure
    }
}

/// Maps any error to its exit code, writing its message to stderr. The one place errors
/// become exit codes; the codes themselves come from ``ErrorCode``.
func report(_ error: any Error) -> KisvaultExit {
    switch error {
    case CLIError.readerGone:
        // The reader has all it wanted (`| head`): nothing to say, as tools people pipe do.
        return .readerGone
    case let error as CLIError:
        Terminal.note(error.description)
        return error.exit
    case let error as AgentError:
        Terminal.note(error.description)
        return KisvaultExit(error.code)
    case let error as ServiceError:
        Terminal.note(error.description)
        return KisvaultExit(error.code)
    case let error as ExitCode:
        return KisvaultExit(rawValue: error.rawValue) ?? .failure
    default:
        guard let code = ErrorCode.of(error) else {
            Terminal.note("unexpected error: \(error)")
            return .failure
        }
        Terminal.note("\(error)")
        return KisvaultExit(code)
    }
}
