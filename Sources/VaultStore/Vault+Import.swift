import Foundation
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
        return try vault.write { records in
            var problems = earlierProblems
            var summary = ImportSummary(added: 0, updated: 0)
            let now = Timestamp.string(Date())
            let auditor = AuditAppender(keys: keys)
            // What is in the vault, read once: each row is checked against it here, not
            // with two lookups per row (a round trip each on a database server).
            let stored = try records.sealedAccounts()
            var existing = Dictionary(stored.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            var owners = Dictionary(stored.map { ($0.appkeyFingerprint, $0.name) }, uniquingKeysWith: { first, _ in first })
            for (candidate, fingerprint) in valid {
                let account = candidate.account
                do {
                    let replacing = existing[account.name]
                    if replacing != nil, !update { throw VaultError.accountExists(name: account.name) }
                    if let owner = owners[fingerprint], owner != account.name {
                        throw VaultError.duplicateAppkey(existing: owner, adding: account.name)
                    }
                    if let replacing {
                        try replace(records, replacing, with: account, now: now, fingerprint: fingerprint)
                        owners[replacing.appkeyFingerprint] = nil
                        try auditor.append(records, entry: auditEntry(action: "account.import", account: account.name, detail: "updated from \(source)"))
                        summary.updated += 1
                    } else {
                        existing[account.name] = try insertChecked(records, account, now: now, fingerprint: fingerprint)
                        try auditor.append(records, entry: auditEntry(action: "account.import", account: account.name, detail: "added from \(source)"))
                        summary.added += 1
                    }
                    owners[fingerprint] = account.name
                } catch let error as VaultError {
                    problems.append(ImportProblem(location: candidate.location, account: account.name, reason: Self.reason(error)))
                }
            }
            // Throwing rolls the whole transaction back: all rows or none.
            if !problems.isEmpty { throw VaultError.importRejected(source: source, problems: problems) }
            try auditor.finish(records)
            return summary
        }
    }

    func replace(_ records: any VaultRecords, _ existing: SealedAccount, with account: NewAccount, now: String, fingerprint fp: Data) throws {
        // The appkey's uniqueness was checked by the caller.
        let id = existing.id
        let s = account.secrets
        // Every field is written anew, sealed for the imported environment (same name).
        let bound = FieldBinding.account(account.environment, existing.name)
        try records.updateAccount(id: id, .environment(account.environment))
        try records.updateAccount(id: id, .accountNumber(s.accountNumber.map { seal($0, id, .accountNumber, bound) }))
        try records.updateAccount(id: id, .htsID(s.htsID.map { seal($0, id, .htsID, bound) }))
        // The secrets' time moves only with a new appkey: re-importing the same file
        // keeps the cached credentials.
        let at = existing.appkeyFingerprint != fp ? now : nil
        try records.updateAccount(id: id, .appCredentials(fingerprint: fp, appkey: seal(s.appkey, id, .appkey, bound), appsecret: seal(s.appsecret, id, .appsecret, bound), at: at))
        if at != nil { try records.forgetIssued(accountID: id) }
        try records.updateAccount(id: id, .touched(now))
        try records.replaceTags(of: id, with: Set(account.tags).sorted())
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
        let (sealed, summaries) = try vault.read { records in
            (try records.sealedAccounts(), Dictionary(uniqueKeysWithValues: try records.accountSummaries(tag: nil).map { ($0.id, $0) }))
        }
        var out: [(AccountSummary, AccountSecrets)] = []
        out.reserveCapacity(sealed.count)
        for account in sealed {
            guard let summary = summaries[account.id] else { continue }
            out.append((summary, try openSecrets(account)))
        }
        return out
    }
}
