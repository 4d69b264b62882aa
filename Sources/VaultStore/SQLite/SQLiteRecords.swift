import Foundation
import GRDB
import VaultCrypto

/// The vault's records in one SQLite transaction: every SQL statement of a vault file.
///
/// Statements that run once per account of a bulk run are cached (`cachedStatement`) and
/// their rows read by position from a cursor: by name GRDB compares every column name
/// case-insensitively, and `fetchOne` copies the row with its names first, which a
/// 10,000-row listing or a bulk claim feels.
struct SQLiteRecords: VaultRecords {
    let db: Database

    // MARK: Identity and audit head

    func identity() throws -> VaultIdentity? {
        let rows = try Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key IN ('vault_id', 'created_at', 'key_check')")
        guard !rows.isEmpty else { return nil }
        let meta = Dictionary(rows.map { ($0[0] as String, $0[1] as DatabaseValue) }, uniquingKeysWith: { a, _ in a })
        // A missing or mistyped value reads as empty: `doctor` reports it by its length.
        func blob(_ key: String) -> Data { meta[key].flatMap { Data.fromDatabaseValue($0) } ?? Data() }
        return VaultIdentity(vaultID: blob("vault_id"), createdAt: meta["created_at"].flatMap { String.fromDatabaseValue($0) } ?? "",
                             keyCheck: blob("key_check"))
    }

    func insertIdentity(_ identity: VaultIdentity) throws {
        try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('vault_id', ?), ('created_at', ?), ('key_check', ?)",
                       arguments: [identity.vaultID, identity.createdAt, identity.keyCheck])
    }

    func auditHead() throws -> AuditHead? {
        let seq = try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'audit_head_seq'"))
        let mac = try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'audit_head_mac'"))
        guard let seq else { return nil }
        return AuditHead(seq: seq, mac: mac ?? Data())
    }

    func setAuditHead(_ head: AuditHead) throws {
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_head_seq', ?), ('audit_head_mac', ?)")
            .execute(arguments: [head.seq, head.mac])
    }

    func metaText(_ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    func setMetaText(_ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [key, value])
    }

    // MARK: Keyslots

    func keyslots() throws -> [KeyslotRecord] {
        try Row.fetchAll(db, sql: "SELECT label, kdf, opslimit, memlimit, salt, wrapped_key, created_at FROM keyslots ORDER BY id").map { row in
            KeyslotRecord(
                label: row[0],
                kdf: KDFParameters(algorithm: row[1], opslimit: UInt64(row[2] as Int64), memlimit: row[3]),
                salt: [UInt8](row[4] as Data), wrappedKey: row[5], createdAt: row[6])
        }
    }

    func insertKeyslot(_ slot: KeyslotRecord) throws {
        try db.execute(
            sql: "INSERT INTO keyslots(label, kdf, opslimit, memlimit, salt, wrapped_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [slot.label, slot.kdf.algorithm, Int64(slot.kdf.opslimit), slot.kdf.memlimit, Data(slot.salt), slot.wrappedKey, slot.createdAt])
    }

    func replaceKeyslot(_ slot: KeyslotRecord) throws -> Bool {
        try db.execute(
            sql: "UPDATE keyslots SET kdf = ?, opslimit = ?, memlimit = ?, salt = ?, wrapped_key = ?, created_at = ? WHERE label = ?",
            arguments: [slot.kdf.algorithm, Int64(slot.kdf.opslimit), slot.kdf.memlimit, Data(slot.salt), slot.wrappedKey, slot.createdAt, slot.label])
        return db.changesCount > 0
    }

    func deleteKeyslot(label: String) throws -> Bool {
        try db.execute(sql: "DELETE FROM keyslots WHERE label = ?", arguments: [label])
        return db.changesCount > 0
    }

    // MARK: Accounts

    static let summarySQL = """
        SELECT a.id, a.name, a.environment, a.created_at, a.updated_at, a.secrets_updated_at,
               (SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM account_tags t WHERE t.account_id = a.id ORDER BY tag))
        FROM accounts a
        """

    /// Reads the columns of ``summarySQL`` by position.
    static func summary(from row: Row) -> AccountSummary {
        let tags: String? = row[6]
        return AccountSummary(
            id: row[0], name: row[1],
            environment: AccountEnvironment(rawValue: row[2]) ?? .mock,
            tags: tags.map { $0.split(separator: "\u{1F}").map(String.init) } ?? [],
            createdAt: row[3], updatedAt: row[4], secretsUpdatedAt: row[5])
    }

    func accountSummaries(tag: String?) throws -> [AccountSummary] {
        var sql = Self.summarySQL
        var arguments: StatementArguments = []
        if let tag {
            sql += " WHERE EXISTS (SELECT 1 FROM account_tags t WHERE t.account_id = a.id AND t.tag = ?)"
            arguments = [tag]
        }
        // A cursor reads each value straight from SQLite; fetchAll would copy every row first.
        return try Array(Row.fetchCursor(db, sql: sql + " ORDER BY a.name", arguments: arguments).map(Self.summary(from:)))
    }

    func accountSummary(named name: String) throws -> AccountSummary? {
        try Row.fetchOne(db, sql: Self.summarySQL + " WHERE a.name = ?", arguments: [name]).map(Self.summary(from:))
    }

    func accountNames(tag: String?) throws -> [String] {
        if let tag {
            return try String.fetchAll(db, sql: """
                SELECT a.name FROM accounts a JOIN account_tags t ON t.account_id = a.id AND t.tag = ? ORDER BY a.name
                """, arguments: [tag])
        }
        return try String.fetchAll(db, sql: "SELECT name FROM accounts ORDER BY name")
    }

    static let sealedSQL = "SELECT id, name, environment, appkey_fp, appkey, appsecret, account_no, hts_id FROM accounts"

    static func sealed(from row: Row) -> SealedAccount {
        SealedAccount(id: row[0], name: row[1], environment: AccountEnvironment(rawValue: row[2]) ?? .mock,
                      appkeyFingerprint: row[3], appkey: row[4], appsecret: row[5], accountNumber: row[6], htsID: row[7])
    }

    func sealedAccount(named name: String) throws -> SealedAccount? {
        try Row.fetchOne(db.cachedStatement(sql: Self.sealedSQL + " WHERE name = ?"), arguments: [name]).map(Self.sealed(from:))
    }

    func sealedAccounts() throws -> [SealedAccount] {
        try Array(Row.fetchCursor(db, sql: Self.sealedSQL + " ORDER BY name").map(Self.sealed(from:)))
    }

    func accountName(withFingerprint fingerprint: Data, except id: String?) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT name FROM accounts WHERE appkey_fp = ? AND id IS NOT ?"),
                            arguments: [fingerprint, id])
    }

    func accountExists(id: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM accounts WHERE id = ?"), arguments: [id]) != nil
    }

    func insertAccount(_ account: SealedAccount, tags: [String], times: AccountTimes) throws {
        try db.cachedStatement(sql: """
            INSERT INTO accounts(id, name, environment, appkey_fp, appkey, appsecret, account_no, hts_id, created_at, updated_at, secrets_updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                account.id, account.name, account.environment.rawValue, account.appkeyFingerprint,
                account.appkey, account.appsecret, account.accountNumber, account.htsID, times.createdAt, times.updatedAt, times.secretsUpdatedAt,
            ])
        for tag in tags { try addTag(tag, to: account.id) }
    }

    func updateAccount(id: String, _ change: AccountRecordChange) throws {
        switch change {
        case .environment(let environment):
            try db.execute(sql: "UPDATE accounts SET environment = ? WHERE id = ?", arguments: [environment.rawValue, id])
        case .accountNumber(let blob):
            try db.execute(sql: "UPDATE accounts SET account_no = ? WHERE id = ?", arguments: [blob, id])
        case .htsID(let blob):
            try db.execute(sql: "UPDATE accounts SET hts_id = ? WHERE id = ?", arguments: [blob, id])
        case .appCredentials(let fingerprint, let appkey, let appsecret, let at):
            try db.execute(sql: "UPDATE accounts SET appkey_fp = ?, appkey = ?, appsecret = ?, secrets_updated_at = coalesce(?, secrets_updated_at) WHERE id = ?",
                           arguments: [fingerprint, appkey, appsecret, at, id])
        case .name(let name):
            try db.execute(sql: "UPDATE accounts SET name = ? WHERE id = ?", arguments: [name, id])
        case .touched(let at):
            try db.execute(sql: "UPDATE accounts SET updated_at = ? WHERE id = ?", arguments: [at, id])
        }
    }

    func addTag(_ tag: String, to id: String) throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO account_tags(account_id, tag) VALUES (?, ?)").execute(arguments: [id, tag])
    }

    func removeTag(_ tag: String, from id: String) throws {
        try db.execute(sql: "DELETE FROM account_tags WHERE account_id = ? AND tag = ?", arguments: [id, tag])
    }

    func replaceTags(of id: String, with tags: [String]) throws {
        try db.cachedStatement(sql: "DELETE FROM account_tags WHERE account_id = ?").execute(arguments: [id])
        for tag in tags { try addTag(tag, to: id) }
    }

    func tagCount(of id: String) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM account_tags WHERE account_id = ?", arguments: [id]) ?? 0
    }

    func deleteAccount(named name: String) throws -> Bool {
        // Tags, credentials and issuance state go with it (ON DELETE CASCADE).
        try db.execute(sql: "DELETE FROM accounts WHERE name = ?", arguments: [name])
        return db.changesCount > 0
    }

    // MARK: Credentials

    static let credentialSQL = "SELECT c.account_id, a.name, c.kind, c.slot, c.id, c.value, c.issued_at, c.expires_at FROM credentials c JOIN accounts a ON a.id = c.account_id"

    static func credential(from row: Row) -> StoredCredential {
        StoredCredential(accountID: row[0], account: row[1], kind: CredentialKind(rawValue: row[2]) ?? .approval,
                         slot: CredentialSlot(rawValue: row[3]) ?? .current, id: row[4], value: row[5], issuedAt: row[6], expiresAt: row[7])
    }

    func credential(account name: String, kind: CredentialKind, slot: CredentialSlot) throws -> StoredCredential? {
        try Row.fetchOne(db.cachedStatement(sql: Self.credentialSQL + " WHERE a.name = ? AND c.kind = ? AND c.slot = ?"),
                         arguments: [name, kind.rawValue, slot.rawValue]).map(Self.credential(from:))
    }

    func credential(accountID: String, kind: CredentialKind, slot: CredentialSlot) throws -> StoredCredential? {
        try Row.fetchOne(db.cachedStatement(sql: Self.credentialSQL + " WHERE c.account_id = ? AND c.kind = ? AND c.slot = ?"),
                         arguments: [accountID, kind.rawValue, slot.rawValue]).map(Self.credential(from:))
    }

    func allCredentials() throws -> [StoredCredential] {
        try Row.fetchAll(db, sql: Self.credentialSQL + " ORDER BY a.name, c.kind, c.slot").map(Self.credential(from:))
    }

    func storeCurrent(_ credential: StoredCredential) throws {
        let key: StatementArguments = [credential.accountID, credential.kind.rawValue]
        try db.cachedStatement(sql: "DELETE FROM credentials WHERE account_id = ? AND kind = ? AND slot = 'previous'").execute(arguments: key)
        try db.cachedStatement(sql: "UPDATE credentials SET slot = 'previous' WHERE account_id = ? AND kind = ? AND slot = 'current'").execute(arguments: key)
        try db.cachedStatement(sql: "INSERT INTO credentials(account_id, kind, slot, id, value, issued_at, expires_at) VALUES (?, ?, 'current', ?, ?, ?, ?)")
            .execute(arguments: key + [credential.id, credential.value, credential.issuedAt, credential.expiresAt])
    }

    func deleteCredential(accountID: String, kind: CredentialKind, slot: CredentialSlot) throws {
        try db.cachedStatement(sql: "DELETE FROM credentials WHERE account_id = ? AND kind = ? AND slot = ?")
            .execute(arguments: [accountID, kind.rawValue, slot.rawValue])
    }

    func replaceCredentialValue(accountID: String, kind: CredentialKind, slot: CredentialSlot, value: Data) throws {
        try db.execute(sql: "UPDATE credentials SET value = ? WHERE account_id = ? AND kind = ? AND slot = ?",
                       arguments: [value, accountID, kind.rawValue, slot.rawValue])
    }

    func forgetIssued(accountID: String) throws {
        try db.execute(sql: "DELETE FROM credentials WHERE account_id = ?", arguments: [accountID])
        try db.execute(sql: "DELETE FROM issuance WHERE account_id = ?", arguments: [accountID])
    }

    // MARK: Issuance state

    /// The issuance state of accounts for one kind: bind the kind as `?1`, and append a
    /// WHERE clause whose own parameters start at `?2`. (The kind is a parameter rather
    /// than a joined list of kinds: SQLite would build a temporary table for that list on
    /// every execution, which made this the most expensive statement of a bulk claim.)
    static let snapshotSQL = """
        SELECT a.id, a.name, a.environment, ?1,
               c.issued_at, c.expires_at, p.issued_at, p.expires_at,
               i.lease_owner, i.lease_expires_at, i.last_request_at, i.rejected_code, i.rejected_message, i.last_error
        FROM accounts a
        LEFT JOIN credentials c ON c.account_id = a.id AND c.kind = ?1 AND c.slot = 'current'
        LEFT JOIN credentials p ON p.account_id = a.id AND p.kind = ?1 AND p.slot = 'previous'
        LEFT JOIN issuance i ON i.account_id = a.id AND i.kind = ?1
        """

    /// Reads the columns of ``snapshotSQL`` by position.
    static func snapshot(from row: Row) -> IssuanceSnapshot {
        func date(_ index: Int) -> Date? { (row[index] as String?).flatMap(Timestamp.parse) }
        func times(_ issued: Int, _ expires: Int) -> CredentialTimes? {
            guard let i = date(issued), let e = date(expires) else { return nil }
            return CredentialTimes(issuedAt: i, expiresAt: e)
        }
        return IssuanceSnapshot(
            accountID: row[0], account: row[1], environment: AccountEnvironment(rawValue: row[2]) ?? .mock,
            kind: CredentialKind(rawValue: row[3]) ?? .approval,
            current: times(4, 5), previous: times(6, 7),
            leaseOwner: row[8], leaseExpiresAt: date(9), lastRequestAt: date(10),
            rejectedCode: row[11], rejectedMessage: row[12], lastError: row[13])
    }

    func issuanceSnapshot(account name: String, kind: CredentialKind) throws -> IssuanceSnapshot? {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: Self.snapshotSQL + " WHERE a.name = ?2"), arguments: [kind.rawValue, name])
        // The row is read in place: the cursor must outlive the reads (released earlier, it
        // resets the statement and every column reads NULL).
        return try withExtendedLifetime(rows) { try rows.next().map(Self.snapshot(from:)) }
    }

    func issuanceSnapshots(kind: CredentialKind, tag: String?) throws -> [IssuanceSnapshot] {
        var sql = Self.snapshotSQL
        var arguments: StatementArguments = [kind.rawValue]
        if let tag {
            sql += " WHERE EXISTS (SELECT 1 FROM account_tags t WHERE t.account_id = a.id AND t.tag = ?2)"
            arguments += [tag]
        }
        return try Array(Row.fetchCursor(db, sql: sql + " ORDER BY a.name", arguments: arguments).map(Self.snapshot(from:)))
    }

    func issuanceRecords() throws -> [IssuanceRecord] {
        try Row.fetchAll(db, sql: "SELECT account_id, kind, lease_owner, lease_expires_at, last_request_at, rejected_code, rejected_message, last_error FROM issuance ORDER BY account_id, kind").map {
            IssuanceRecord(accountID: $0[0], kind: CredentialKind(rawValue: $0[1]) ?? .approval, leaseOwner: $0[2], leaseExpiresAt: $0[3],
                           lastRequestAt: $0[4], rejectedCode: $0[5], rejectedMessage: $0[6], lastError: $0[7])
        }
    }

    func insertIssuance(_ r: IssuanceRecord) throws {
        try db.execute(sql: """
            INSERT INTO issuance(account_id, kind, lease_owner, lease_expires_at, last_request_at, rejected_code, rejected_message, last_error)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [r.accountID, r.kind.rawValue, r.leaseOwner, r.leaseExpiresAt, r.lastRequestAt, r.rejectedCode, r.rejectedMessage, r.lastError])
    }

    func sealedAppCredentials(accountID: String) throws -> (appkey: Data, appsecret: Data)? {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: "SELECT appkey, appsecret FROM accounts WHERE id = ?"), arguments: [accountID])
        // A cursor's row is read in place: the cursor must outlive the reads.
        return try withExtendedLifetime(rows) { try rows.next().map { ($0[0], $0[1]) } }
    }

    /// A file has no view of other processes; the key manager asks the kernel instead.
    func leaseHolderAlive(_ owner: String) throws -> Bool? { nil }

    func claimLease(accountID: String, kind: CredentialKind, owner: String, until: String, requestAt: String) throws {
        try db.cachedStatement(sql: """
            INSERT INTO issuance(account_id, kind, lease_owner, lease_expires_at, last_request_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (account_id, kind) DO UPDATE SET
                lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, last_request_at = excluded.last_request_at
            """).execute(arguments: [accountID, kind.rawValue, owner, until, requestAt])
    }

    func releaseLease(accountID: String, kind: CredentialKind, owner: String) throws {
        try db.cachedStatement(sql: "UPDATE issuance SET lease_owner = NULL, lease_expires_at = NULL WHERE account_id = ? AND kind = ? AND lease_owner = ?")
            .execute(arguments: [accountID, kind.rawValue, owner])
    }

    func renewLease(accountID: String, kind: CredentialKind, owner: String, until: String, requestAt: String) throws -> Bool {
        try db.cachedStatement(sql: "UPDATE issuance SET lease_expires_at = ?, last_request_at = ? WHERE account_id = ? AND kind = ? AND lease_owner = ?")
            .execute(arguments: [until, requestAt, accountID, kind.rawValue, owner])
        return db.changesCount > 0
    }

    func clearError(accountID: String, kind: CredentialKind, releasingLeaseOf owner: String) throws {
        // In UPDATE expressions every column reads its old value, so both CASEs test the
        // holder as it was.
        try db.cachedStatement(sql: """
            INSERT INTO issuance(account_id, kind) VALUES (?1, ?2)
            ON CONFLICT (account_id, kind) DO UPDATE SET last_error = NULL,
                lease_owner = CASE WHEN lease_owner = ?3 THEN NULL ELSE lease_owner END,
                lease_expires_at = CASE WHEN lease_owner = ?3 THEN NULL ELSE lease_expires_at END
            """).execute(arguments: [accountID, kind.rawValue, owner])
    }

    private func ensureIssuanceRow(_ accountID: String, _ kind: CredentialKind) throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO issuance(account_id, kind) VALUES (?, ?)").execute(arguments: [accountID, kind.rawValue])
    }

    func markRejected(accountID: String, kind: CredentialKind, code: String, message: String) throws {
        try ensureIssuanceRow(accountID, kind)
        try db.cachedStatement(sql: "UPDATE issuance SET rejected_code = ?, rejected_message = ?, last_error = ? WHERE account_id = ? AND kind = ?")
            .execute(arguments: [code, message, message, accountID, kind.rawValue])
    }

    func recordError(accountID: String, kind: CredentialKind, message: String) throws {
        try ensureIssuanceRow(accountID, kind)
        try db.cachedStatement(sql: "UPDATE issuance SET last_error = ? WHERE account_id = ? AND kind = ?")
            .execute(arguments: [message, accountID, kind.rawValue])
    }

    // MARK: Audit log

    /// The columns every audit query selects first, in the order ``auditRecord(_:)`` reads them.
    static let auditColumns = "seq, at, actor, keyslot, action, account, outcome, detail"

    static func auditRecord(_ row: Row) -> AuditRecord {
        AuditRecord(seq: row[0], at: row[1], actor: row[2], keyslot: row[3], action: row[4],
                    account: row[5], outcome: row[6], detail: row[7])
    }

    func appendAudit(_ record: AuditRecord, mac: Data) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit(seq, at, actor, keyslot, action, account, outcome, detail, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [record.seq, record.at, record.actor, record.keyslot, record.action, record.account, record.outcome, record.detail, mac])
    }

    func auditRecords(account: String?, since: String?) throws -> [AuditRecord] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let account { clauses.append("account = ?"); arguments += [account] }
        if let since { clauses.append("at >= ?"); arguments += [since] }
        let whereSQL = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        return try Array(Row.fetchCursor(db, sql: "SELECT \(Self.auditColumns) FROM audit\(whereSQL) ORDER BY seq", arguments: arguments)
            .map(Self.auditRecord))
    }

    func forEachAuditRow(_ body: (AuditRecord, Data) throws -> Void) throws {
        let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.auditColumns), mac FROM audit ORDER BY seq")
        while let row = try rows.next() { try body(Self.auditRecord(row), row[8]) }
    }

    func auditRowCount() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM audit") ?? 0
    }

    func auditRow(seq: Int64) throws -> (AuditRecord, Data)? {
        try Row.fetchOne(db, sql: "SELECT \(Self.auditColumns), mac FROM audit WHERE seq = ?", arguments: [seq]).map { (Self.auditRecord($0), $0[8]) }
    }

    func lastAuditRow() throws -> (AuditRecord, Data)? {
        try Row.fetchOne(db, sql: "SELECT \(Self.auditColumns), mac FROM audit ORDER BY seq DESC LIMIT 1").map { (Self.auditRecord($0), $0[8]) }
    }
}
