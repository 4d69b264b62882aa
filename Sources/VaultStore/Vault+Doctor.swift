import Foundation
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

    func modeChecks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let directory = (path as NSString).deletingLastPathComponent
        func mode(_ p: String) -> mode_t? {
            var info = stat()
            return stat(p, &info) == 0 ? info.st_mode & 0o777 : nil
        }
        if let m = mode(directory.isEmpty ? "." : directory) {
            let ok = m & 0o077 == 0
            checks.append(DoctorCheck(check: "directory mode", status: ok ? .ok : .warn,
                                      detail: String(format: "%@ is %03o%@", directory.isEmpty ? "." : directory, m, ok ? "" : ": others can list it; use a 0700 directory")))
        }
        for suffix in ["", "-wal", "-shm"] {
            guard let m = mode(path + suffix) else { continue }
            let ok = m & 0o077 == 0
            checks.append(DoctorCheck(check: "file mode\(suffix)", status: ok ? .ok : .fail,
                                      detail: String(format: "%@ is %03o%@", path + suffix, m, ok ? "" : ": readable by others; chmod 600 it")))
        }
        return checks
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
