import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// What this client has seen of each vault's history: per vault id and place, the highest
/// audit sequence number and the MAC of that row. A vault whose log ends before it (a file
/// replaced by an older copy, a schema restored from a dump) or whose row there has another
/// MAC (a history rewritten) is refused at unlock, until `vault accept-restore` says the
/// restore was meant (docs/SECURITY.md, "Rollback").
///
/// A place is the vault file's real path, or a team vault's server, database and schema:
/// a copy made elsewhere (`vault copy`, to move between a file and PostgreSQL) has the
/// same id and its own history from then on, while a backup put back in the same place is
/// the rollback this refuses.
///
/// One small file per vault id and place in the client's own state directory
/// (`$XDG_STATE_HOME/kisvault/seen`, else `~/.local/state/kisvault/seen`), written through a
/// temporary file and a rename, 0600 in a 0700 directory. It holds no secret: sequence
/// numbers and MACs are in the vault's plaintext too.
public struct HeadMemory: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// This user's memory, where the environment says.
    public static func standard(_ env: [String: String] = ProcessInfo.processInfo.environment) -> HeadMemory {
        let state = env["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (env["HOME"] ?? NSHomeDirectory()) + "/.local/state"
        return HeadMemory(directory: state + "/kisvault/seen")
    }

    /// What was seen of one vault.
    public struct Seen: Sendable, Equatable {
        public var seq: Int64
        public var mac: Data
    }

    /// A vault at one place: its id and where it is.
    public struct Key: Sendable, Equatable {
        public var vaultID: Data
        public var place: String
    }

    func file(_ key: Key) -> String {
        directory + "/" + hexString(key.vaultID) + "-" + hexString(KeyedHash.hash(Array(key.place.utf8), key: [UInt8](), length: 16).prefix(8))
    }

    /// The head last seen of the vault `key` names, if any (an unreadable or malformed memory is
    /// none: it is the client's cache, never a reason to refuse).
    public func seen(_ key: Key) -> Seen? {
        guard let text = try? String(contentsOfFile: file(key), encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let seq = Int64(parts[0]), seq >= 0, let mac = Self.bytes(hex: parts[1]) else { return nil }
        return Seen(seq: seq, mac: mac)
    }

    /// Remembers `head` for the vault `key` names. With `replacing` false (every use but an
    /// accepted restore) a head behind the one remembered is left as it is.
    func remember(_ head: Seen, of key: Key, replacing: Bool = false) {
        if !replacing, let seen = seen(key), seen.seq >= head.seq { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = file(key)
        let temporary = path + ".tmp-\(getpid())"
        let text = "\(head.seq) \(hexString(head.mac))\n"
        let fd = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        close(fd)
        if written == bytes.count { rename(temporary, path) } else { unlink(temporary) }
    }

    static func bytes(hex: Substring) -> Data? {
        guard hex.count % 2 == 0 else { return nil }
        var out = Data()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            out.append(byte)
            index = next
        }
        return out
    }
}

extension UnlockedVault {
    /// What one read of the vault says about its history: its id and place (the key of
    /// ``HeadMemory``), its head, whether the log's last row proves that head, and the MAC
    /// of the row at `seq` when asked for.
    struct History {
        var key: HeadMemory.Key
        var head: HeadMemory.Seen
        var proven: Bool
        var macAtSeen: Data?
    }

    /// The vault's history in one read transaction. The head is proven when the row it
    /// names exists and its MAC, recomputed from the row before it under the audit key,
    /// equals the head's. An unproven head (a forged one, or a log damaged at its end) is
    /// never remembered: it could otherwise pass for a newer history. It is not refused
    /// here either: `audit verify` and `doctor` must still open such a vault to say what is
    /// wrong with it.
    func history(macAt seq: Int64? = nil) throws(VaultError) -> History {
        let (identity, head, last, before, there) = try vault.read { records in
            let head = try records.auditHead()
            return (try records.identity(), head,
                    try head.flatMap { try records.auditRow(seq: $0.seq) },
                    try head.flatMap { $0.seq > 1 ? try records.auditRow(seq: $0.seq - 1) : nil },
                    try seq.flatMap { $0 == head?.seq ? nil : try records.auditRow(seq: $0)?.1 })
        }
        let key = try memoryKey(identity)
        guard let head else { return History(key: key, head: HeadMemory.Seen(seq: 0, mac: Data(count: 32)), proven: true, macAtSeen: nil) }
        let seen = HeadMemory.Seen(seq: head.seq, mac: head.mac)
        let previous = before.map { [UInt8]($0.1) } ?? [UInt8](repeating: 0, count: 32)
        let proven = last.map { last in
            last.0.seq == head.seq && (head.seq == 1 || before != nil)
                && constantTimeEqual(AuditLog.mac(previous: previous, record: last.0, key: keys.audit), [UInt8](last.1))
                && constantTimeEqual([UInt8](last.1), [UInt8](head.mac))
        } ?? false
        return History(key: key, head: seen, proven: proven, macAtSeen: seq == head.seq ? head.mac : there)
    }

    /// Refuses this vault when its history is behind what `memory` saw of it, or differs
    /// from it; else remembers its head (when proven). Called when the vault is unlocked.
    /// - Throws: ``VaultError/rolledBack(path:seen:found:)``, ``VaultError/historyDiffers(path:seq:)``.
    public func checkHistory(_ memory: HeadMemory) throws(VaultError) {
        // What was seen is read before the vault: another process of this client may commit
        // and remember a newer head in between, and a head read first would then look behind.
        // The memory is keyed by the vault's id: one read for it, then one for the history.
        let seen = memory.seen(try memoryKey(try vault.read { records in try records.identity() }))
        let now = try history(macAt: seen?.seq)
        if let seen {
            if now.head.seq < seen.seq { throw .rolledBack(path: vault.path, seen: seen.seq, found: now.head.seq) }
            guard let there = now.macAtSeen, constantTimeEqual([UInt8](there), [UInt8](seen.mac)) else {
                throw .historyDiffers(path: vault.path, seq: seen.seq)
            }
        }
        if now.proven { memory.remember(now.head, of: now.key) }
    }

    /// Remembers the vault's head now (after this client wrote to it), so that a restore to
    /// a state before these writes is refused too.
    public func rememberHead(_ memory: HeadMemory) {
        guard let now = try? history(), now.proven else { return }
        memory.remember(now.head, of: now.key)
    }

    /// `vault accept-restore`: the vault as it now is becomes what this client has seen,
    /// audited (with the head it replaces), whatever that was.
    /// Answers what this client had seen, the row the vault ended at, and the acceptance's row.
    public func acceptRestore(_ memory: HeadMemory) throws(VaultError) -> (seen: HeadMemory.Seen?, found: Int64, accepted: Int64) {
        let before = try history()
        let seen = memory.seen(before.key)
        let found = before.head.seq
        try recordAudit(action: "vault.restore-accepted",
                        detail: "the log ended at row \(found); " + (seen.map { "this client had seen row \($0.seq)" } ?? "this client had seen nothing of it"))
        let after = try history()
        memory.remember(after.head, of: after.key, replacing: true)
        return (seen, found, after.head.seq)
    }

    /// This vault's id and place (see ``HeadMemory``).
    func memoryKey(_ identity: VaultIdentity?) throws(VaultError) -> HeadMemory.Key {
        guard let identity else { throw .damaged(path: vault.path, detail: "the vault's identity row is missing") }
        let kind = VaultKind.of(vault.path)
        let place = kind == .team ? kind.backend.identity(of: vault.path) ?? vault.path
            : realpath(vault.path, nil).map { pointer in defer { free(pointer) }; return String(cString: pointer) } ?? vault.path
        return HeadMemory.Key(vaultID: identity.vaultID, place: place)
    }
}
