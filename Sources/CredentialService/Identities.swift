import Foundation
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// Identities as a front end keeps them (docs/FORMAT.md, "Identity files"): made, written
/// as a file of their own that is never replaced, read back with its size capped and its
/// mode checked, and named by their recipient line.
public enum Identities {
    /// A new identity: its file's text and its recipient line.
    public struct Created: Sendable {
        public let file: String
        public let recipient: String
    }

    /// A new X25519 identity, sealed under `passphrase` (Argon2id with `kdf`) or, with nil,
    /// a machine identity in clear.
    public static func create(passphrase: SecureBytes?, kdf: KDFParameters, now: Date = Date()) throws -> Created {
        let identity = Identity.generate()
        return Created(file: try IdentityFile.text(identity, passphrase: passphrase, kdf: kdf, created: Timestamp.string(now)),
                       recipient: identity.recipient.description)
    }

    /// Where `identity new` writes and commands look when no `--identity` or
    /// `KISVAULT_IDENTITY` names one: `$XDG_CONFIG_HOME/kisvault/identity`, else
    /// `~/.config/kisvault/identity`.
    public static func defaultPath(_ env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let config = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (env["HOME"] ?? NSHomeDirectory()) + "/.config"
        return config + "/kisvault/identity"
    }

    /// The recipient of the identity file at `path`; `passphrase` is asked only for a
    /// sealed one (its recipient is computed from the key, never taken from the comment).
    public static func recipient(ofFile path: String, passphrase: () throws -> SecureBytes?) throws -> String {
        try IdentityFile.open(try read(path), passphrase: passphrase).recipient.description
    }

    /// The text of the identity file at `path`: at most ``IdentityFile/maxBytes``, a
    /// regular file; one in clear (a machine identity) must be this user's and not
    /// readable by others, as ssh asks of its keys.
    public static func read(_ path: String) throws(ServiceError) -> String {
        // O_NONBLOCK: a FIFO put in its place must not hang the command before it is refused.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw ServiceError(.notFound, "cannot read the identity \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ServiceError(.badRequest, "the identity \(path) is not a regular file")
        }
        var buffer = [UInt8](repeating: 0, count: IdentityFile.maxBytes + 1)
        var count = 0
        while count < buffer.count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            count += n
        }
        defer { buffer.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        guard count <= IdentityFile.maxBytes else {
            throw ServiceError(.badRequest, "\(path) is larger than an identity file (\(IdentityFile.maxBytes) bytes at most)")
        }
        let text = String(decoding: buffer.prefix(count), as: UTF8.self)
        let sealed: Bool
        do { sealed = try IdentityFile.needsPassphrase(text) } catch { throw ServiceError(.badRequest, "\(path): \(error)") }
        if !sealed {
            guard info.st_uid == getuid() else {
                throw ServiceError(.badRequest, "the machine identity \(path) belongs to uid \(info.st_uid), not to you: whoever owns it can replace it")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw ServiceError(.badRequest, String(format: "the machine identity %@ has mode %03o: anyone who reads it is this member; chmod 600 it", path, info.st_mode & 0o777))
            }
        }
        return text
    }

    /// Writes a new identity file at `path`, 0600, in a directory made 0700 if missing;
    /// never over an existing file (an identity replaced is a member locked out).
    public static func write(_ text: String, to path: String) throws(ServiceError) {
        let directory = PathName.directory(of: path)
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        catch { throw ServiceError(.vaultError, "cannot create \(directory): \(error.localizedDescription)") }
        let temporary = directory + "/.\(PathName.base(of: path)).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ServiceError(.vaultError, "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { unlink(temporary) }
        var bytes = Array(text.utf8)
        defer { bytes.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else { throw ServiceError(.vaultError, "cannot write \(path): \(String(cString: strerror(errno)))") }
        // link() fails when the name exists: the check and the creation are one step.
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { throw ServiceError(.badRequest, "\(path) exists; kisvault never replaces an identity: choose another --output, or remove it yourself") }
            throw ServiceError(.vaultError, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
