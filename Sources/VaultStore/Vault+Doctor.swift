import Foundation
import VaultCrypto

/// One finding of `kisvault doctor`.
public struct DoctorCheck: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case ok, warn, fail }
    public var check: String
    public var status: Status
    public var detail: String

    public init(check: String, status: Status, detail: String) {
        self.check = check
        self.status = status
        self.detail = detail
    }
}

extension Vault {
    /// Recorded times ahead of `now` (this vault's clock): a machine clock that ran ahead
    /// and was corrected, or an edited row. kisvault no longer believes them (it issues
    /// such credentials again and waits at most KIS's minute), but says where they are.
    public func timeCheck(now: Date, longestLifetime: TimeInterval) -> DoctorCheck {
        do {
            var ahead: [String] = []
            for kind in CredentialKind.allCases {
                for snapshot in try issuanceSnapshots(kind: kind) {
                    let future = now.addingTimeInterval(CredentialTimes.futureSlack)
                    // The times decisions are made by (a previous token's only wait to be
                    // revoked).
                    if !(snapshot.current?.isBelievable(at: now, longest: longestLifetime) ?? true)
                        || (snapshot.lastRequestAt.map { $0 > future } ?? false)
                        || (snapshot.leaseExpiresAt.map { $0 > future.addingTimeInterval(longestLifetime) } ?? false) {
                        ahead.append("\(snapshot.account) (\(kind.rawValue))")
                    }
                }
            }
            return ahead.isEmpty
                ? DoctorCheck(check: "times", status: .ok, detail: "no recorded time is ahead of this clock")
                : DoctorCheck(check: "times", status: .warn, detail: "\(ahead.count) with times ahead of this clock (a clock that ran ahead, or an edited row): \(ahead.prefix(20).joined(separator: ", ")); they are issued again on next use, or now with 'kisvault approval|token rotate NAME'")
        } catch {
            return DoctorCheck(check: "times", status: .fail, detail: "\(error)")
        }
    }

    /// Names kisvault would not have written (an edit with psql or sqlite3). The report
    /// shows them as every text from outside is shown: escaped where it is printed.
    func nameCheck() -> DoctorCheck {
        do {
            let summaries = try accounts()
            var broken: [String] = []
            for summary in summaries {
                for (what, text) in [("account name", summary.name)] + summary.tags.map { ("tag", $0) } {
                    do { try Names.validate(text, what: what) } catch {
                        broken.append("\(what) \(text)")
                    }
                }
            }
            return broken.isEmpty
                ? DoctorCheck(check: "names", status: .ok, detail: "every account name and tag follows the name rules")
                : DoctorCheck(check: "names", status: .fail, detail: "\(broken.count) written outside kisvault, breaking the name rules: \(broken.prefix(10).joined(separator: ", ")); rename them with 'kisvault account rename'")
        } catch {
            return DoctorCheck(check: "names", status: .fail, detail: "\(error)")
        }
    }

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
        checks.append(contentsOf: storage.storageChecks())
        checks.append(nameCheck())
        checks.append(contentsOf: structureChecks())
        return checks
    }

    /// Consistency that needs no key: the parts of a vault that must agree with each other
    /// do. A vault whose pages come from two vaults (a new file joined by a stale `-wal` of
    /// a deleted one) fails here, where only unlocking would otherwise notice.
    func structureChecks() -> [DoctorCheck] {
        do {
            let problems = try read { records -> [String] in
                var problems: [String] = []
                let identity = try records.identity()
                if identity?.vaultID.count != 16 { problems.append("meta.vault_id is missing or not 16 bytes") }
                if identity?.keyCheck.count != 32 { problems.append("meta.key_check is missing or not 32 bytes") }
                let created = identity?.createdAt ?? ""
                if created.isEmpty { problems.append("meta.created_at is missing") }
                let slots = try records.keyslots()
                if slots.isEmpty { problems.append("there is no keyslot") }
                for slot in slots where slot.salt.count != 16 || slot.wrappedKey.count != 72 {
                    problems.append("keyslot '\(slot.label)' has a salt or wrapped key of the wrong size")
                }
                // The audit head in meta must name the last audit row and carry its MAC,
                // and the rows must run 1...n: all plaintext, comparable without the key.
                let count = try records.auditRowCount()
                let head = try records.auditHead()
                if let (last, mac) = try records.lastAuditRow() {
                    if last.seq != Int64(count) { problems.append("the audit log has \(count) rows but its last is number \(last.seq)") }
                    if head?.seq != last.seq || head?.mac != mac {
                        problems.append("the audit head in meta does not name the last audit row")
                    }
                } else if head != nil {
                    problems.append("meta names an audit head but the audit log is empty")
                }
                if let (first, _) = try records.auditRow(seq: 1) {
                    if first.action != "vault.init" { problems.append("the first audit row is '\(first.action)', not vault.init") }
                    if !created.isEmpty, first.at < created {
                        problems.append("the vault.init audit row (\(first.at)) is older than the vault (\(created))")
                    }
                }
                return problems
            } + storage.foreignRecordProblems()
            return [problems.isEmpty
                ? DoctorCheck(check: "structure", status: .ok, detail: "meta, keyslots and audit head agree")
                : DoctorCheck(check: "structure", status: .fail,
                              detail: problems.prefix(5).joined(separator: "; ") + (VaultKind.of(path) == .team
                                  ? ": rows were deleted or changed outside kisvault; restore the schema from a backup"
                                  : ": the file may hold pages of two vaults (a stale -wal?); restore from a backup"))]
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
            let accounts = try vault.read { records in try records.sealedAccounts() }
            var failed: [String] = []
            var failing: [SealedAccount] = []
            for account in accounts {
                do {
                    _ = try openSecrets(account)
                } catch {
                    failing.append(account)
                    if case .fieldAuthenticationFailed(_, let field) = error { failed.append("\(account.name) (\(field))") }
                    else { failed.append(account.name) }
                }
            }
            // A name moved outside kisvault: whose name the fields were sealed under.
            for account in failing.prefix(200) {
                if let owner = failing.first(where: { other in other.id != account.id
                    && (try? keys.open(account.appkey, kind: AccountField.kind, recordID: account.id, binding: .account(account.environment, other.name), field: AccountField.appkey.rawValue)) != nil }) {
                    failed.append("the row named '\(account.name)' holds the secrets sealed for '\(owner.name)' (names changed outside kisvault: rename them back)")
                }
            }
            checks.append(failed.isEmpty
                ? DoctorCheck(check: "sealed fields", status: .ok, detail: "all fields of \(accounts.count) accounts authenticate")
                : DoctorCheck(check: "sealed fields", status: .fail,
                              detail: "\(failed.count) of \(accounts.count) accounts fail to authenticate: \(failed.prefix(20).joined(separator: ", "))"))
        } catch {
            checks.append(DoctorCheck(check: "sealed fields", status: .fail, detail: "\(error)"))
        }
        do {
            // Stored approval keys and tokens: each bound to its account, kind and record.
            let stored = try vault.read { records in try records.allCredentials() }
            var failed: [String] = []
            for credential in stored {
                do {
                    _ = try open(credential)
                } catch {
                    failed.append("\(credential.account) (\(credential.kind.rawValue) \(credential.slot.rawValue))")
                }
            }
            checks.append(failed.isEmpty
                ? DoctorCheck(check: "credentials", status: .ok, detail: "all \(stored.count) stored approval keys and tokens authenticate")
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
