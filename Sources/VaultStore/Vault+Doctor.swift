import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import VaultCrypto

/// One finding of `kisvault doctor`.
public struct DoctorCheck: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case ok, warn, fail }
    public var check: String
    public var status: Status
    public var detail: String
}

extension Vault {
    /// Checks that need no passphrase: format, keyslot strength, file modes, SQLite's
    /// `integrity_check`.
    public func healthChecks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        checks.append(DoctorCheck(check: "format", status: .ok, detail: "vault format \(formatVersion) (this kisvault writes \(Schema.currentVersion))"))
        do {
            let slots = try keyslots()
            for slot in slots {
                let mib = slot.kdf.memlimit / (1024 * 1024)
                let params = "\(slot.kdf.algorithm), \(slot.kdf.opslimit) passes, \(mib > 0 ? "\(mib) MiB" : "\(slot.kdf.memlimit / 1024) KiB")"
                checks.append(DoctorCheck(
                    check: "keyslot \(slot.label)", status: slot.kdf.isWeak ? .warn : .ok,
                    detail: slot.kdf.isWeak ? "\(params): weaker than INTERACTIVE; change it with 'kisvault passphrase change'" : params))
            }
        } catch {
            checks.append(DoctorCheck(check: "keyslots", status: .fail, detail: "\(error)"))
        }
        checks.append(contentsOf: modeChecks())
        checks.append(contentsOf: structureChecks())
        do {
            let result = try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            let ok = result == ["ok"]
            checks.append(DoctorCheck(check: "integrity", status: ok ? .ok : .fail,
                                      detail: ok ? "SQLite integrity_check: ok" : result.prefix(5).joined(separator: "; ")))
        } catch {
            checks.append(DoctorCheck(check: "integrity", status: .fail, detail: "\(error)"))
        }
        return checks
    }

    /// File and directory modes, checked where the data really is: a vault path that is a
    /// symbolic link is resolved first, because SQLite keeps `-wal` and `-shm` beside the
    /// file the link points to, and whoever can write *that* directory can replace the
    /// vault or plant a write-ahead log in it.
    func modeChecks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let real = Self.resolvedPath(path)
        if real != path {
            checks.append(DoctorCheck(check: "symlink", status: .ok, detail: "\(path) is a link to \(real); checking \(real)"))
        }
        let directory = PathName.directory(of: real)
        var info = stat()
        if stat(directory, &info) == 0 {
            let m = info.st_mode & 0o777
            let writable = m & 0o022 != 0
            let foreignOwner = info.st_uid != getuid() && info.st_uid != 0
            let status: DoctorCheck.Status = writable || foreignOwner ? .fail : m & 0o077 != 0 ? .warn : .ok
            var detail = String(format: "%@ is %03o", directory, m)
            if writable {
                detail += ": others can write it, so they can replace the vault or plant a -wal file beside it; chmod 700 it (or move the vault to a 0700 directory)"
            } else if foreignOwner {
                detail += ", owned by uid \(info.st_uid): its owner can replace the vault; move the vault to a directory of your own"
            } else if m & 0o077 != 0 {
                detail += ": others can list it; use a 0700 directory"
            }
            checks.append(DoctorCheck(check: "directory mode", status: status, detail: detail))
        }
        for suffix in ["", "-wal", "-shm"] {
            var file = stat()
            guard stat(real + suffix, &file) == 0 else { continue }
            let m = file.st_mode & 0o777
            let ok = m & 0o077 == 0
            checks.append(DoctorCheck(check: "file mode\(suffix)", status: ok ? .ok : .fail,
                                      detail: String(format: "%@ is %03o%@", real + suffix, m, ok ? "" : ": readable by others; chmod 600 it")))
        }
        return checks
    }

    /// `path` with every symbolic link resolved (`realpath(3)`), or `path` itself.
    static func resolvedPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A `-wal` beside the vault must be this vault's own. The main file alone (read with
    /// SQLite's `immutable`, which ignores the log) holds the `vault_id` written at `init`,
    /// and no later write changes it; through the log it must be the same. A log left by a
    /// deleted vault shows that vault's id, and its rows, instead.
    func walOwnerProblems() -> [String] {
        guard FileManager.default.fileExists(atPath: path + "-wal") else { return [] }
        let viaLog: Data?
        let fileAlone: Data?
        do {
            viaLog = try read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'vault_id'") }
            let escaped = path.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "?", with: "%3f")
                .replacingOccurrences(of: "#", with: "%23")
            let alone = try DatabaseQueue(path: "file:\(escaped)?immutable=1", configuration: Self.configuration(readonly: true, busyTimeout: busyTimeout))
            defer { try? alone.close() }
            fileAlone = try alone.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'vault_id'") }
        } catch {
            // The file changing under the immutable read (a checkpoint) is not a finding.
            return []
        }
        guard let fileAlone, let viaLog, fileAlone != viaLog else { return [] }
        return ["the write-ahead log \(path)-wal belongs to another vault (its vault_id differs from the file's): a vault was deleted while a process had it open and this one was created in its place; what you see is the old vault's rows"]
    }

    /// Consistency that needs no key: the parts of a vault that must agree with each other
    /// do. A vault whose pages come from two vaults (a new file joined by a stale `-wal` of
    /// a deleted one) fails here, where only unlocking would otherwise notice.
    func structureChecks() -> [DoctorCheck] {
        do {
            let problems = try read { db -> [String] in
                var problems: [String] = []
                let meta = Dictionary(try Row.fetchAll(db, sql: "SELECT key, value FROM meta").map { ($0["key"] as String, $0["value"] as DatabaseValue) },
                                      uniquingKeysWith: { a, _ in a })
                func blob(_ key: String) -> Data? { meta[key].flatMap { Data.fromDatabaseValue($0) } }
                if blob("vault_id")?.count != 16 { problems.append("meta.vault_id is missing or not 16 bytes") }
                if blob("key_check")?.count != 32 { problems.append("meta.key_check is missing or not 32 bytes") }
                let created = meta["created_at"].flatMap { String.fromDatabaseValue($0) }
                if created == nil { problems.append("meta.created_at is missing") }
                let slots = try Row.fetchAll(db, sql: "SELECT label, length(salt) AS salt, length(wrapped_key) AS wrapped FROM keyslots")
                if slots.isEmpty { problems.append("there is no keyslot") }
                for slot in slots {
                    let label: String = slot["label"]
                    if (slot["salt"] as Int?) != 16 || (slot["wrapped"] as Int?) != 72 {
                        problems.append("keyslot '\(label)' has a salt or wrapped key of the wrong size")
                    }
                }
                // The audit head in meta must name the last audit row and carry its MAC,
                // and the rows must run 1...n: all plaintext, comparable without the key.
                let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM audit") ?? 0
                let last = try Row.fetchOne(db, sql: "SELECT seq, mac, action, at FROM audit ORDER BY seq DESC LIMIT 1")
                let headSeq = meta["audit_head_seq"].flatMap { Int64.fromDatabaseValue($0) }
                if let last {
                    let seq: Int64 = last["seq"]
                    if seq != Int64(count) { problems.append("the audit log has \(count) rows but its last is number \(seq)") }
                    if headSeq != seq || blob("audit_head_mac") != (last["mac"] as Data?) {
                        problems.append("the audit head in meta does not name the last audit row")
                    }
                } else if headSeq != nil {
                    problems.append("meta names an audit head but the audit log is empty")
                }
                if let first = try Row.fetchOne(db, sql: "SELECT action, at FROM audit WHERE seq = 1") {
                    let action: String = first["action"]
                    if action != "vault.init" { problems.append("the first audit row is '\(action)', not vault.init") }
                    if let created, let at: String = first["at"], at < created {
                        problems.append("the vault.init audit row (\(at)) is older than the vault (\(created))")
                    }
                }
                return problems
            } + walOwnerProblems()
            return [problems.isEmpty
                ? DoctorCheck(check: "structure", status: .ok, detail: "meta, keyslots and audit head agree")
                : DoctorCheck(check: "structure", status: .fail,
                              detail: problems.prefix(5).joined(separator: "; ") + ": the file may hold pages of two vaults (a stale -wal?); restore from a backup")]
        } catch {
            return [DoctorCheck(check: "structure", status: .fail, detail: "\(error)")]
        }
    }
}

extension UnlockedVault {
    /// Opens every sealed field of every account and walks the audit chain; names each
    /// account whose data fails to authenticate.
    public func secretChecks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        do {
            let rows = try vault.read { db in
                try Row.fetchAll(db, sql: "SELECT id, name, appkey, appsecret, account_no, hts_id FROM accounts ORDER BY name")
            }
            var failed: [String] = []
            for row in rows {
                let name: String = row["name"]
                do {
                    _ = try openSecrets(row: row, name: name)
                } catch {
                    if case .fieldAuthenticationFailed(_, let field) = error { failed.append("\(name) (\(field))") }
                    else { failed.append(name) }
                }
            }
            checks.append(failed.isEmpty
                ? DoctorCheck(check: "sealed fields", status: .ok, detail: "all fields of \(rows.count) accounts authenticate")
                : DoctorCheck(check: "sealed fields", status: .fail,
                              detail: "\(failed.count) of \(rows.count) accounts fail to authenticate: \(failed.prefix(20).joined(separator: ", "))"))
        } catch {
            checks.append(DoctorCheck(check: "sealed fields", status: .fail, detail: "\(error)"))
        }
        do {
            // Stored approval keys and tokens: each bound to its account, kind and record.
            let rows = try vault.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT a.name, c.account_id, c.kind, c.slot, c.id, c.value FROM credentials c JOIN accounts a ON a.id = c.account_id ORDER BY a.name
                    """)
            }
            var failed: [String] = []
            for row in rows {
                let kind: String = row["kind"], accountID: String = row["account_id"], id: String = row["id"]
                do {
                    _ = try keys.open(row["value"], kind: kind, recordID: "\(accountID).\(id)", field: "value")
                } catch {
                    failed.append("\(row["name"] as String) (\(kind) \(row["slot"] as String))")
                }
            }
            checks.append(failed.isEmpty
                ? DoctorCheck(check: "credentials", status: .ok, detail: "all \(rows.count) stored approval keys and tokens authenticate")
                : DoctorCheck(check: "credentials", status: .fail, detail: "\(failed.count) fail to authenticate: \(failed.prefix(20).joined(separator: ", "))"))
        } catch {
            checks.append(DoctorCheck(check: "credentials", status: .fail, detail: "\(error)"))
        }
        do {
            let verification = try verifyAudit()
            checks.append(verification.isIntact
                ? DoctorCheck(check: "audit chain", status: .ok, detail: "\(verification.rows) entries, chain intact")
                : DoctorCheck(check: "audit chain", status: .fail, detail: verification.problems.prefix(5).joined(separator: "; ")))
        } catch {
            checks.append(DoctorCheck(check: "audit chain", status: .fail, detail: "\(error)"))
        }
        return checks
    }
}
