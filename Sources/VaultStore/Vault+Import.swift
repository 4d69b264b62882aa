import Foundation
import GRDB
import VaultCrypto

/// One parsed row of an import file, with where it came from for error reports.
public struct ImportCandidate: Sendable {
    public var location: String
    public var account: NewAccount

    public init(location: String, account: NewAccount) {
        self.location = location
        self.account = account
    }
}

/// What an import did.
public struct ImportSummary: Sendable, Equatable {
    public var added: Int
    public var updated: Int
}

extension UnlockedVault {
    /// Imports accounts in one transaction: every row lands or none does.
    ///
    /// Every row is checked (names, credential shapes, duplicates within the file and
    /// against the vault, one account per appkey) and every problem is reported, together
    /// with `parseProblems` found while reading the file, in one
    /// ``VaultError/importRejected(source:problems:)``. With `update`, a row whose name
    /// exists replaces that account's environment, secrets and tags.
    public func importAccounts(
        _ candidates: [ImportCandidate], update: Bool, source: String, parseProblems: [ImportProblem] = []
    ) throws(VaultError) -> ImportSummary {
        var problems = parseProblems
        var valid: [(candidate: ImportCandidate, fingerprint: Data)] = []
        var firstSeen: [String: String] = [:]
        var fingerprints: [Data: String] = [:]
        for candidate in candidates {
            let account = candidate.account
            do {
                try validate(account)
            } catch {
                problems.append(ImportProblem(location: candidate.location, account: account.name, reason: Self.reason(error)))
                continue
            }
            if let earlier = firstSeen[account.name] {
                problems.append(ImportProblem(location: candidate.location, account: account.name, reason: "the name appears already at \(earlier)"))
                continue
            }
            let fp = keys.appkeyFingerprint(account.secrets.appkey)
            if let earlier = fingerprints[fp] {
                problems.append(ImportProblem(location: candidate.location, account: account.name, reason: "its appkey is the same as at \(earlier); KIS allows one appkey per account"))
                continue
            }
            firstSeen[account.name] = candidate.location
            fingerprints[fp] = "\(candidate.location) ('\(account.name)')"
            valid.append((candidate, fp))
        }
        // Go on to the database checks even when rows were refused above, so that one run
        // reports every problem; the transaction is rolled back at the end if any.
        let earlierProblems = problems
        return try vault.write { db in
            var problems = earlierProblems
            var summary = ImportSummary(added: 0, updated: 0)
            let now = Timestamp.string(Date())
            let auditor = AuditAppender(keys: keys)
            for (candidate, fingerprint) in valid {
                let account = candidate.account
                do {
                    if update, let id = try String.fetchOne(db, sql: "SELECT id FROM accounts WHERE name = ?", arguments: [account.name]) {
                        try replace(db, id: id, with: account, now: now, fingerprint: fingerprint)
                        try auditor.append(db, entry: auditEntry(action: "account.import", account: account.name, detail: "updated from \(source)"))
                        summary.updated += 1
                    } else {
                        try insert(db, account, now: now, fingerprint: fingerprint)
                        try auditor.append(db, entry: auditEntry(action: "account.import", account: account.name, detail: "added from \(source)"))
                        summary.added += 1
                    }
                } catch let error as VaultError {
                    problems.append(ImportProblem(location: candidate.location, account: account.name, reason: Self.reason(error)))
                }
            }
            // Throwing rolls the whole transaction back: all rows or none.
            if !problems.isEmpty { throw VaultError.importRejected(source: source, problems: problems) }
            try auditor.finish(db)
            return summary
        }
    }

    func replace(_ db: Database, id: String, with account: NewAccount, now: String, fingerprint fp: Data) throws {
        if let owner = try String.fetchOne(db, sql: "SELECT name FROM accounts WHERE appkey_fp = ? AND id != ?", arguments: [fp, id]) {
            throw VaultError.duplicateAppkey(existing: owner, adding: account.name)
        }
        let oldFP = try Data.fetchOne(db, sql: "SELECT appkey_fp FROM accounts WHERE id = ?", arguments: [id])
        let s = account.secrets
        try db.execute(sql: """
            UPDATE accounts SET environment = ?, appkey_fp = ?, appkey = ?, appsecret = ?, account_no = ?, hts_id = ?, updated_at = ?
            WHERE id = ?
            """, arguments: [
                account.environment.rawValue, fp, seal(s.appkey, id, .appkey), seal(s.appsecret, id, .appsecret),
                s.accountNumber.map { seal($0, id, .accountNumber) }, s.htsID.map { seal($0, id, .htsID) }, now, id,
            ])
        if oldFP != fp {
            try db.execute(sql: "UPDATE accounts SET secrets_updated_at = ? WHERE id = ?", arguments: [now, id])
            try didRotateSecrets(db, accountID: id)
        }
        try db.execute(sql: "DELETE FROM account_tags WHERE account_id = ?", arguments: [id])
        for tag in Set(account.tags).sorted() {
            try db.execute(sql: "INSERT INTO account_tags(account_id, tag) VALUES (?, ?)", arguments: [id, tag])
        }
    }

    /// The reason part of a per-row error, without the "account 'X':" prefix the problem
    /// line already carries.
    static func reason(_ error: VaultError) -> String {
        switch error {
        case .invalidAccount(_, let reason): return reason
        case .accountExists: return "an account of this name is already in the vault (use --update to replace it)"
        case .duplicateAppkey(let existing, _): return "its appkey is already in the vault as account '\(existing)'"
        default: return error.description
        }
    }

    /// Every account with its secrets opened, for `account export --plaintext`.
    public func exportAccounts() throws(VaultError) -> [(AccountSummary, AccountSecrets)] {
        let rows = try vault.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name, appkey, appsecret, account_no, hts_id FROM accounts ORDER BY name")
        }
        let summaries = Dictionary(uniqueKeysWithValues: try vault.accounts().map { ($0.id, $0) })
        var out: [(AccountSummary, AccountSecrets)] = []
        out.reserveCapacity(rows.count)
        for row in rows {
            let name: String = row["name"]
            guard let summary = summaries[row["id"]] else { continue }
            out.append((summary, try openSecrets(row: row, name: name)))
        }
        return out
    }
}
