import Foundation

/// Everything that can go wrong in the vault, with enough context to tell the user what
/// to do. No case carries a secret: accounts are named, never their keys.
public enum VaultError: Error, Sendable, Equatable {
    /// There is no file at the path.
    case vaultNotFound(path: String)
    /// `init` found a file already at the path.
    case vaultExists(path: String)
    /// The file is not a kisvault vault (empty, text, another SQLite database).
    case notAVault(path: String, reason: String)
    /// The vault was written by a newer kisvault.
    case newerFormat(path: String, found: Int, supported: Int)
    /// SQLite reports corruption, or a structural check failed.
    case damaged(path: String, detail: String)
    /// No keyslot opened with the passphrase.
    case wrongPassphrase(keyslotsTried: Int)
    /// A keyslot opened but wraps a key that is not this vault's.
    case foreignKeyslot(label: String)
    /// A sealed field failed to authenticate: altered, moved from another row, or damaged.
    case fieldAuthenticationFailed(account: String, field: String)
    /// No account of that name.
    case accountNotFound(name: String)
    /// An account of that name exists already.
    case accountExists(name: String)
    /// The appkey being added belongs to another account already.
    case duplicateAppkey(existing: String, adding: String)
    /// An account's fields do not pass validation.
    case invalidAccount(name: String, reason: String)
    /// A name or tag is not acceptable.
    case invalidName(String, reason: String)
    /// No keyslot with that label.
    case keyslotNotFound(label: String)
    /// A keyslot with that label exists already.
    case keyslotExists(label: String)
    /// Removing this keyslot would leave the vault without one.
    case lastKeyslot(label: String)
    /// The vault file or its directory cannot be written.
    case readOnly(path: String)
    /// Another process held the vault's write lock past the busy timeout.
    case busy(path: String, timeoutSeconds: Double)
    /// An import file had problems; nothing was written.
    case importRejected(source: String, problems: [ImportProblem])
    /// `init` found SQLite files of an earlier vault (`-wal`, `-shm`, `-journal`) beside
    /// the path, which SQLite would read as the new vault's.
    case staleFiles(path: String, files: [String])
    /// The vault's write-ahead log was deleted while a process had the vault open.
    case walMissing(path: String)
    /// A `postgres://` vault location kisvault will not use (a password in it, plain text
    /// across a network, a bad parameter).
    case invalidLocation(String, reason: String)
    /// The database server cannot be reached or refuses this user (connection refused,
    /// wrong password, TLS failure).
    case unreachable(location: String, detail: String)
    /// The connection to the database server was lost while COMMIT was on its way or its
    /// answer was: the transaction may or may not have been stored.
    case commitUnknown(location: String, detail: String)
    /// The vault's history ends before what this client saw of it: a file replaced by an
    /// older copy, a schema restored from a dump.
    case rolledBack(path: String, seen: Int64, found: Int64)
    /// The vault's history at the row this client saw last is another one.
    case historyDiffers(path: String, seq: Int64)
    /// Any other file-system, SQLite or PostgreSQL failure.
    case io(path: String, detail: String)
}

/// One bad row of an import: where it is and why it was refused.
public struct ImportProblem: Sendable, Equatable, CustomStringConvertible {
    /// "line 7" for CSV, "item 3" for JSON, "my_app" for kis-yaml.
    public var location: String
    /// The account name when the row had one.
    public var account: String?
    public var reason: String

    public init(location: String, account: String?, reason: String) {
        self.location = location
        self.account = account
        self.reason = reason
    }

    public var description: String {
        if let account { return "\(location) (account '\(account)'): \(reason)" }
        return "\(location): \(reason)"
    }
}

extension VaultError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .vaultNotFound(let path):
            return "no vault at \(path); create one with 'kisvault init' or point --vault / KISVAULT_PATH at an existing vault"
        case .vaultExists(let path) where VaultKind.of(path) == .team:
            return "the schema of \(path) already holds tables; kisvault never writes over them: choose another ?schema= (or an empty database)"
        case .vaultExists(let path):
            return "a file already exists at \(path); kisvault init never overwrites: choose another --vault path or remove the file yourself"
        case .notAVault(let path, let reason):
            return "\(path) is not a kisvault vault (\(reason)); check --vault / KISVAULT_PATH"
        case .newerFormat(let path, let found, let supported):
            return "\(path) uses vault format \(found), newer than this kisvault understands (up to \(supported)); upgrade kisvault"
        case .damaged(let path, let detail):
            return "the vault \(path) is damaged (\(detail)); restore it from a backup, and run 'kisvault doctor' to see what is affected"
        case .wrongPassphrase(let tried):
            return "wrong passphrase (no keyslot of \(tried) opened with it); try again, or ask a teammate whose keyslot is in this vault"
        case .foreignKeyslot(let label):
            return "keyslot '\(label)' opened but holds a key that is not this vault's; the vault was tampered with: run 'kisvault doctor'"
        case .fieldAuthenticationFailed(let account, let field):
            return "the \(field) of account '\(account)' failed to authenticate: the vault was altered or damaged (or the row renamed outside kisvault); nothing was handed out. Run 'kisvault doctor', then re-enter the account's secrets with 'kisvault account edit \(account) --rotate-secret'"
        case .accountNotFound(let name):
            return "no account named '\(name)'; see 'kisvault account list'"
        case .accountExists(let name):
            return "an account named '\(name)' already exists; choose another name, or use 'kisvault account edit \(name)'"
        case .duplicateAppkey(let existing, let adding):
            return "the appkey given for '\(adding)' is already in the vault as account '\(existing)'; KIS allows one appkey per account: edit '\(existing)' instead"
        case .invalidAccount(let name, let reason):
            return "account '\(name)': \(reason)"
        case .invalidName(let name, let reason):
            return "'\(name)' is not a valid name: \(reason)"
        case .keyslotNotFound(let label):
            return "no keyslot labelled '\(label)'; see 'kisvault keyslot list'"
        case .keyslotExists(let label):
            return "a keyslot labelled '\(label)' already exists; choose another label"
        case .lastKeyslot(let label):
            return "keyslot '\(label)' is the vault's last: removing it would lock everyone out; add another with 'kisvault keyslot add' first"
        case .readOnly(let path):
            return "the vault \(path) cannot be written (read-only file or directory); fix its permissions or use a writable copy"
        case .busy(let path, let timeout):
            return "the vault \(path) is locked by another process (waited \(timeout) s); try again when it has finished"
        case .importRejected(let source, let problems):
            let head = "nothing imported from \(source): \(problems.count) problem\(problems.count == 1 ? "" : "s")"
            return ([head] + problems.prefix(50).map { "  \($0)" }
                + (problems.count > 50 ? ["  ... and \(problems.count - 50) more"] : [])).joined(separator: "\n")
        case .staleFiles(let path, let files):
            return "refusing to create \(path): \(files.joined(separator: ", ")) of an earlier vault \(files.count == 1 ? "is" : "are") still there, and SQLite would read \(files.count == 1 ? "it" : "them") as the new vault's; stop any kisvault agent or process using the old vault, then remove \(files.count == 1 ? "it" : "them") (or choose another --vault path)"
        case .walMissing(let path):
            return "the vault's write-ahead log \(path)-wal is missing while \(path)-shm is there: it was deleted while a process (a kisvault agent?) had the vault open, and what that process wrote since is in the deleted file; stop that process ('kisvault agent stop'), then run 'kisvault doctor'"
        case .invalidLocation(let location, let reason):
            return "cannot use the vault \(location): \(reason)"
        case .unreachable(let location, let detail):
            return "cannot reach the vault \(location): \(detail)"
        case .commitUnknown(let location, let detail):
            return "the connection to the vault \(location) was lost during a commit (\(detail)): what it wrote may or may not be stored; running the same command again finds out, and issues only what is missing"
        case .rolledBack(let path, let seen, let found):
            return "the vault \(path) has been rolled back: its audit log ends at row \(found), but this machine has seen it at row \(seen). Whatever happened since (issued tokens, removed keyslots, edits) is gone from it; if the restore was deliberate, run 'kisvault vault accept-restore' (audited), else find out who replaced it"
        case .historyDiffers(let path, let seq):
            return "the vault \(path) has another history than this machine saw: its audit row \(seq) is not the one seen here (a different vault with the same id, or a rewritten log). Run 'kisvault audit verify'; if this vault is the one to keep, 'kisvault vault accept-restore'"
        case .io(let path, let detail):
            return "cannot use \(path): \(detail)"
        }
    }
}

extension VaultError {
    /// Every name of a selection among the `known` accounts, else the first that is not, as
    /// ``accountNotFound(name:)``: the one check of every command that takes account names.
    public static func checkNamed(_ names: [String], among known: Set<String>) throws(VaultError) {
        if let missing = names.first(where: { !known.contains($0) }) { throw .accountNotFound(name: missing) }
    }
}
