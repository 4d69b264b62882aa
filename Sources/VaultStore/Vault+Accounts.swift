import Foundation
import GRDB
import VaultCrypto

extension Vault {
    /// Lists accounts by name, optionally only those carrying `tag`. Needs no passphrase:
    /// only plaintext metadata is read.
    public func accounts(tag: String? = nil) throws(VaultError) -> [AccountSummary] {
        try read { db in
            var sql = Self.summarySQL
            var arguments: StatementArguments = []
            if let tag {
                sql += " WHERE EXISTS (SELECT 1 FROM account_tags t WHERE t.account_id = a.id AND t.tag = ?)"
                arguments = [tag]
            }
            sql += " ORDER BY a.name"
            // A cursor reads each value straight from SQLite; fetchAll would copy every row first.
            return try Array(Row.fetchCursor(db, sql: sql, arguments: arguments).map(Self.summary(from:)))
        }
    }

    /// The names of every account (optionally with `tag`), sorted: what `--all` and
    /// `--tag` select, without the metadata.
    public func accountNames(tag: String? = nil) throws(VaultError) -> [String] {
        try read { db in
            if let tag {
                return try String.fetchAll(db, sql: """
                    SELECT a.name FROM accounts a JOIN account_tags t ON t.account_id = a.id AND t.tag = ? ORDER BY a.name
                    """, arguments: [tag])
            }
            return try String.fetchAll(db, sql: "SELECT name FROM accounts ORDER BY name")
        }
    }

    /// The metadata of account `name`.
    /// - Throws: ``VaultError/accountNotFound(name:)``.
    public func account(named name: String) throws(VaultError) -> AccountSummary {
        let found = try read { db in try Self.fetchSummary(db, name: name) }
        guard let found else { throw .accountNotFound(name: name) }
        return found
    }

    static func fetchSummary(_ db: Database, name: String) throws -> AccountSummary? {
        try Row.fetchOne(db, sql: summarySQL + " WHERE a.name = ?", arguments: [name]).map(summary(from:))
    }

    static let summarySQL = """
        SELECT a.id, a.name, a.environment, a.created_at, a.updated_at, a.secrets_updated_at,
               (SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM account_tags t WHERE t.account_id = a.id ORDER BY tag))
        FROM accounts a
        """

    /// Reads the columns of ``summarySQL`` by position (by name, GRDB compares every column
    /// name case-insensitively: a quarter of a 10,000-row listing).
    static func summary(from row: Row) -> AccountSummary {
        let tags: String? = row[6]
        return AccountSummary(
            id: row[0], name: row[1],
            environment: AccountEnvironment(rawValue: row[2]) ?? .mock,
            tags: tags.map { $0.split(separator: "\u{1F}").map(String.init) } ?? [],
            createdAt: row[3], updatedAt: row[4], secretsUpdatedAt: row[5])
    }
}

/// The sealed columns of an account row and their field labels in the key derivation.
enum AccountField: String, CaseIterable {
    case appkey, appsecret, accountNumber = "account_no", htsID = "hts_id"
    static let kind = "account"
}

extension UnlockedVault {
    /// Adds one account.
    /// - Throws: ``VaultError/accountExists(name:)``, ``VaultError/duplicateAppkey(existing:adding:)``,
    ///   ``VaultError/invalidAccount(name:reason:)``, ``VaultError/invalidName(_:reason:)``.
    @discardableResult
    public func addAccount(_ account: NewAccount) throws(VaultError) -> AccountSummary {
        try validate(account)
        return try vault.write { db in
            try insert(db, account, now: Timestamp.string(Date()))
            try audit(db, action: "account.add", account: account.name, detail: "environment=\(account.environment.rawValue)")
            return try Vault.fetchSummary(db, name: account.name)!
        }
    }

    func validate(_ account: NewAccount) throws(VaultError) {
        try Names.validate(account.name, what: "account name")
        try AccountValidation.checkTagCount(name: account.name, Set(account.tags).count)
        for tag in account.tags { try Names.validate(tag, what: "tag") }
        try AccountValidation.check(name: account.name, appkey: account.secrets.appkey, appsecret: account.secrets.appsecret)
        if let number = account.secrets.accountNumber {
            try AccountValidation.checkAccountNumber(name: account.name, number.utf8String())
        }
        if let hts = account.secrets.htsID { try AccountValidation.checkHTSID(name: account.name, hts) }
    }

    /// Inserts a validated account inside the caller's transaction.
    func insert(_ db: Database, _ account: NewAccount, now: String, fingerprint known: Data? = nil) throws {
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM accounts WHERE name = ?", arguments: [account.name]) == true {
            throw VaultError.accountExists(name: account.name)
        }
        let fingerprint = known ?? keys.appkeyFingerprint(account.secrets.appkey)
        if let owner = try String.fetchOne(db, sql: "SELECT name FROM accounts WHERE appkey_fp = ?", arguments: [fingerprint]) {
            throw VaultError.duplicateAppkey(existing: owner, adding: account.name)
        }
        // Why a random record id rather than the name: names change (rename) and the id is
        // part of every field key, so it must not.
        let id = hexString(randomBytes(16))
        let s = account.secrets
        try db.execute(sql: """
            INSERT INTO accounts(id, name, environment, appkey_fp, appkey, appsecret, account_no, hts_id, created_at, updated_at, secrets_updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [
                id, account.name, account.environment.rawValue, fingerprint,
                seal(s.appkey, id, .appkey), seal(s.appsecret, id, .appsecret),
                s.accountNumber.map { seal($0, id, .accountNumber) }, s.htsID.map { seal($0, id, .htsID) },
                now, now, now,
            ])
        for tag in Set(account.tags).sorted() {
            try db.execute(sql: "INSERT INTO account_tags(account_id, tag) VALUES (?, ?)", arguments: [id, tag])
        }
    }

    func seal(_ value: SecureBytes, _ id: String, _ field: AccountField) -> Data {
        keys.seal(value, kind: AccountField.kind, recordID: id, field: field.rawValue)
    }

    /// Opens the secrets of account `name`.
    /// - Throws: ``VaultError/accountNotFound(name:)``;
    ///   ``VaultError/fieldAuthenticationFailed(account:field:)`` when a sealed field was
    ///   altered or moved.
    public func secrets(of name: String) throws(VaultError) -> AccountSecrets {
        let row = try vault.read { db in
            try Row.fetchOne(db, sql: "SELECT id, appkey, appsecret, account_no, hts_id FROM accounts WHERE name = ?", arguments: [name])
        }
        guard let row else { throw .accountNotFound(name: name) }
        return try openSecrets(row: row, name: name)
    }

    func openSecrets(row: Row, name: String) throws(VaultError) -> AccountSecrets {
        let id: String = row["id"]
        func open(_ field: AccountField) throws(VaultError) -> SecureBytes? {
            guard let blob: Data = row[field.rawValue] else { return nil }
            do {
                return try keys.open(blob, kind: AccountField.kind, recordID: id, field: field.rawValue)
            } catch {
                throw .fieldAuthenticationFailed(account: name, field: field.rawValue)
            }
        }
        guard let appkey = try open(.appkey), let appsecret = try open(.appsecret) else {
            throw .fieldAuthenticationFailed(account: name, field: "appkey")
        }
        return AccountSecrets(appkey: appkey, appsecret: appsecret, accountNumber: try open(.accountNumber), htsID: try open(.htsID))
    }

    /// Applies `changes` to account `name`. New credentials are validated and checked
    /// against the one-account-per-appkey rule.
    @discardableResult
    public func editAccount(_ name: String, _ changes: AccountChanges) throws(VaultError) -> AccountSummary {
        try AccountValidation.checkTagCount(name: name, Set(changes.addTags).count)
        for tag in changes.addTags { try Names.validate(tag, what: "tag") }
        if case .some(.some(let hts)) = changes.htsID { try AccountValidation.checkHTSID(name: name, hts) }
        if let credentials = changes.credentials {
            try AccountValidation.check(name: name, appkey: credentials.appkey, appsecret: credentials.appsecret)
        }
        if case .some(.some(let number)) = changes.accountNumber {
            try AccountValidation.checkAccountNumber(name: name, number.utf8String())
        }
        return try vault.write { db in
            guard let id = try String.fetchOne(db, sql: "SELECT id FROM accounts WHERE name = ?", arguments: [name]) else {
                throw VaultError.accountNotFound(name: name)
            }
            let now = Timestamp.string(Date())
            var changed: [String] = []
            if let environment = changes.environment {
                try db.execute(sql: "UPDATE accounts SET environment = ? WHERE id = ?", arguments: [environment.rawValue, id])
                changed.append("environment=\(environment.rawValue)")
            }
            if let number = changes.accountNumber {
                try db.execute(sql: "UPDATE accounts SET account_no = ? WHERE id = ?", arguments: [number.map { seal($0, id, .accountNumber) }, id])
                changed.append("account_no")
            }
            if let hts = changes.htsID {
                try db.execute(sql: "UPDATE accounts SET hts_id = ? WHERE id = ?", arguments: [hts.map { seal($0, id, .htsID) }, id])
                changed.append("hts_id")
            }
            for tag in changes.addTags {
                try db.execute(sql: "INSERT OR IGNORE INTO account_tags(account_id, tag) VALUES (?, ?)", arguments: [id, tag])
                changed.append("+tag=\(tag)")
            }
            for tag in changes.removeTags {
                try db.execute(sql: "DELETE FROM account_tags WHERE account_id = ? AND tag = ?", arguments: [id, tag])
                changed.append("-tag=\(tag)")
            }
            if let credentials = changes.credentials {
                let fingerprint = keys.appkeyFingerprint(credentials.appkey)
                if let owner = try String.fetchOne(db, sql: "SELECT name FROM accounts WHERE appkey_fp = ? AND id != ?", arguments: [fingerprint, id]) {
                    throw VaultError.duplicateAppkey(existing: owner, adding: name)
                }
                try db.execute(sql: "UPDATE accounts SET appkey_fp = ?, appkey = ?, appsecret = ?, secrets_updated_at = ? WHERE id = ?",
                               arguments: [fingerprint, seal(credentials.appkey, id, .appkey), seal(credentials.appsecret, id, .appsecret), now, id])
                try didRotateSecrets(db, accountID: id)
                changed.append("appkey+appsecret")
            }
            if !changes.addTags.isEmpty {
                let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM account_tags WHERE account_id = ?", arguments: [id]) ?? 0
                try AccountValidation.checkTagCount(name: name, count)
            }
            try db.execute(sql: "UPDATE accounts SET updated_at = ? WHERE id = ?", arguments: [now, id])
            try audit(db, action: "account.edit", account: name, detail: changed.joined(separator: " "))
            return try Vault.fetchSummary(db, name: name)!
        }
    }

    /// New credentials make everything tied to the old appkey meaningless: cached
    /// approval keys and tokens, the once-a-minute clock and a "rejected" mark.
    func didRotateSecrets(_ db: Database, accountID: String) throws {
        try db.execute(sql: "DELETE FROM credentials WHERE account_id = ?", arguments: [accountID])
        try db.execute(sql: "DELETE FROM issuance WHERE account_id = ?", arguments: [accountID])
    }

    /// Renames an account. Sealed fields are bound to the record id, not the name, so
    /// nothing is re-encrypted.
    public func renameAccount(_ old: String, to new: String) throws(VaultError) {
        try Names.validate(new, what: "account name")
        try vault.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM accounts WHERE name = ?", arguments: [old]) == true else {
                throw VaultError.accountNotFound(name: old)
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM accounts WHERE name = ?", arguments: [new]) == true {
                throw VaultError.accountExists(name: new)
            }
            try db.execute(sql: "UPDATE accounts SET name = ?, updated_at = ? WHERE name = ?", arguments: [new, Timestamp.string(Date()), old])
            try audit(db, action: "account.rename", account: new, detail: "from=\(old)")
        }
    }

    /// Removes an account and everything stored for it.
    public func removeAccount(_ name: String) throws(VaultError) {
        try vault.write { db in
            try db.execute(sql: "DELETE FROM accounts WHERE name = ?", arguments: [name])
            guard db.changesCount > 0 else { throw VaultError.accountNotFound(name: name) }
            try audit(db, action: "account.remove", account: name)
        }
    }
}
