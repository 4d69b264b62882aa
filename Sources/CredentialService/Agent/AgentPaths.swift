import Foundation
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// Where the agent's socket lives: `$KISVAULT_AGENT_SOCK`, else
/// `$XDG_RUNTIME_DIR/kisvault/agent.sock`, else `/tmp/kisvault-<uid>/agent.sock`; always in a
/// directory of mode 0700 owned by the user.
public enum AgentPaths {
    /// The socket path the environment asks for, and whether it was asked explicitly.
    public static func socket(_ env: [String: String] = ProcessInfo.processInfo.environment) -> (path: String, explicit: Bool) {
        if let explicit = env["KISVAULT_AGENT_SOCK"], !explicit.isEmpty { return (explicit, true) }
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty { return (runtime + "/kisvault/agent.sock", false) }
        return ("/tmp/kisvault-\(getuid())/agent.sock", false)
    }

    /// Creates the socket's directory 0700 if missing; refuses one that another user owns
    /// or that others can enter (someone could swap the socket).
    public static func prepareDirectory(for socket: String) throws(AgentError) {
        let dir = PathName.directory(of: socket)
        var info = stat()
        if lstat(dir, &info) != 0 {
            let parent = PathName.directory(of: dir)
            if parent != dir { try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
            guard mkdir(dir, 0o700) == 0 || errno == EEXIST else {
                throw .setup("cannot create the agent's directory \(dir): \(String(cString: strerror(errno)))")
            }
            guard lstat(dir, &info) == 0 else { throw .setup("cannot inspect \(dir)") }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid() else {
            throw .setup("\(dir) is not a directory of yours; refusing to put the agent's socket there")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw .setup(String(format: "%@ has mode %03o; the agent needs a 0700 directory (chmod 700 it)", dir, info.st_mode & 0o777))
        }
    }
}

/// Agent failures, each with the stable code the HTTP API and the CLI use.
public enum AgentError: Error, Sendable, CustomStringConvertible {
    case setup(String)
    case alreadyRunning(String)
    case notRunning(String)
    case protocolError(String)
    /// The socket's directory or the process serving it is not this user's.
    case untrusted(String)

    /// Its row of the one table (``ErrorCode``), from which the CLI's exit status comes.
    public var code: ErrorCode {
        switch self {
        case .notRunning: .notFound
        case .alreadyRunning: .badRequest
        case .setup, .protocolError, .untrusted: .vaultError
        }
    }

    /// True for ``untrusted(_:)``: a refusal to pass on, never a reason to fall back quietly.
    public var isUntrusted: Bool {
        if case .untrusted = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .setup(let text), .protocolError(let text): return text
        case .untrusted(let text): return "refusing the agent socket: \(text)"
        case .alreadyRunning(let path): return "an agent is already serving this vault (socket \(path)); stop it with 'kisvault agent stop'"
        case .notRunning(let path): return "no agent answers at \(path); start one with 'kisvault agent start'"
        }
    }
}

/// Which vault a path names, as a request to the agent and the agent compare it (its
/// storage's ``VaultBackend/identity(of:)``: a vault file by device and inode, a team
/// vault by server, port, database and schema). Compared before the agent does anything
/// for a request (`vault_differs`).
public enum VaultIdentity {
    /// The identity of the vault at `path`; nil when there is none to name (no such file,
    /// a URL kisvault refuses).
    public static func of(_ path: String) -> String? {
        VaultKind.of(path).backend.identity(of: path)
    }
}

/// The names of the headers kisvault's agent and its clients exchange, for both sides.
public enum AgentHeader {
    /// A request's vault (``VaultIdentity``): the agent refuses one it does not hold.
    public static let forVault = "x-kisvault-for-vault"
    /// An answer's vault: the path the agent serves.
    public static let vault = "x-kisvault-vault"
    /// The KIS URLs of the request (the caller's) and of the answer (the agent's).
    public static let kisReal = "x-kisvault-kis-real"
    public static let kisMock = "x-kisvault-kis-mock"
}
