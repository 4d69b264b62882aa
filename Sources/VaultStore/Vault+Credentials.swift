import Foundation
import GRDB
import VaultCrypto

/// The short-lived credentials kisvault issues.
public enum CredentialKind: String, Sendable, Codable, CaseIterable {
    /// A WebSocket approval key (`/oauth2/Approval`).
    case approval
    /// A REST access token (`/oauth2/tokenP`).
    case token
}

/// When a stored credential was issued and when it expires (plaintext metadata).
public struct CredentialTimes: Sendable, Equatable {
    public var issuedAt: Date
    public var expiresAt: Date

    public init(issuedAt: Date, expiresAt: Date) {
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }
}

/// Everything known about one account's credential of one kind, without secrets: what
/// `status` prints and what the key manager decides on.
public struct IssuanceSnapshot: Sendable {
    public var accountID: String
    public var account: String
    public var environment: AccountEnvironment
    public var kind: CredentialKind
    public var current: CredentialTimes?
    public var previous: CredentialTimes?
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var lastRequestAt: Date?
    /// Set when KIS rejected the appkey/appsecret; cleared when they are edited.
    public var rejectedCode: String?
    public var rejectedMessage: String?
    public var lastError: String?
}

/// A credential sealed for one account and kind, outside any transaction, ready to be
/// stored by ``IssuanceTransaction/store(_:times:releasingLeaseOf:)``. Holds no plaintext.
public struct SealedCredential: Sendable {
    let accountID: String
    let kind: CredentialKind
    let id: String
    let blob: Data
}

/// An account's appkey and appsecret as sealed in the vault, read in the transaction that
/// claims an issuance and opened with ``UnlockedVault/openAppCredentials(_:)`` only when
/// the request is sent. Holds no plaintext.
public struct SealedAppCredentials: Sendable {
    let accountID: String
    public let account: String
    public let environment: AccountEnvironment
    let appkey: Data
    let appsecret: Data
}

/// The changes a key-manager step may make inside one IMMEDIATE transaction.
public struct IssuanceTransaction {
    let db: Database
    let vault: UnlockedVault
    let auditor: AuditAppender
    /// The account's issuance state when the transaction read it, or, in
    /// ``UnlockedVault/withClaimed(_:_:)``, when its lease was claimed.
    public let snapshot: IssuanceSnapshot

    private var key: StatementArguments { [snapshot.accountID, snapshot.kind.rawValue] }

    /// Takes the issuance lease until `until` and records that a request to KIS is about
    /// to be sent (the once-a-minute clock), in one statement. Recorded before the request:
    /// if the process dies after KIS answered, the minute still counts.
    public func claim(owner: String, until: Date, requestAt date: Date) throws {
        try db.cachedStatement(sql: """
            INSERT INTO issuance(account_id, kind, lease_owner, lease_expires_at, last_request_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (account_id, kind) DO UPDATE SET
                lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, last_request_at = excluded.last_request_at
            """).execute(arguments: key + [owner, Timestamp.string(until), Timestamp.string(date)])
    }

    /// The account's sealed appkey and appsecret, for the request this transaction claims.
    /// - Throws: ``VaultError/accountNotFound(name:)`` if the account is gone.
    public func sealedAppCredentials() throws -> SealedAppCredentials {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: "SELECT appkey, appsecret FROM accounts WHERE id = ?"),
                                       arguments: [snapshot.accountID])
        // A cursor's row is read in place: the cursor must outlive the reads.
        return try withExtendedLifetime(rows) {
            guard let row = try rows.next() else { throw VaultError.accountNotFound(name: snapshot.account) }
            return SealedAppCredentials(accountID: snapshot.accountID, account: snapshot.account, environment: snapshot.environment,
                                        appkey: row[0], appsecret: row[1])
        }
    }

    /// Releases the lease if `owner` still holds it.
    public func releaseLease(owner: String) throws {
        try db.cachedStatement(sql: "UPDATE issuance SET lease_owner = NULL, lease_expires_at = NULL WHERE account_id = ? AND kind = ? AND lease_owner = ?").execute(arguments: key + [owner])
    }

    /// Stores a newly issued credential as current (the old current becomes previous),
    /// clears the last error and releases the lease if `owner` still holds it.
    public func store(_ sealed: SealedCredential, times: CredentialTimes, releasingLeaseOf owner: String) throws {
        // Sealed under a key bound to this account and kind: stored anywhere else it would
        // never open again.
        precondition(sealed.accountID == snapshot.accountID && sealed.kind == snapshot.kind, "credential sealed for another account")
        try db.cachedStatement(sql: "DELETE FROM credentials WHERE account_id = ? AND kind = ? AND slot = 'previous'").execute(arguments: key)
        try db.cachedStatement(sql: "UPDATE credentials SET slot = 'previous' WHERE account_id = ? AND kind = ? AND slot = 'current'").execute(arguments: key)
        try db.cachedStatement(sql: "INSERT INTO credentials(account_id, kind, slot, id, value, issued_at, expires_at) VALUES (?, ?, 'current', ?, ?, ?, ?)").execute(arguments: key + [sealed.id, sealed.blob, Timestamp.string(times.issuedAt), Timestamp.string(times.expiresAt)])
        // In UPDATE expressions every column reads its old value, so both CASEs test the
        // holder as it was.
        try db.cachedStatement(sql: """
            INSERT INTO issuance(account_id, kind) VALUES (?1, ?2)
            ON CONFLICT (account_id, kind) DO UPDATE SET last_error = NULL,
                lease_owner = CASE WHEN lease_owner = ?3 THEN NULL ELSE lease_owner END,
                lease_expires_at = CASE WHEN lease_owner = ?3 THEN NULL ELSE lease_expires_at END
            """).execute(arguments: key + [owner])
    }

    /// Forgets the current credential if it is `value` (compared in constant time), and
    /// says whether it did: a caller reporting a dead token drops it only while it is still
    /// the stored one, so reports of an already replaced token change nothing.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)`` for a stored value
    ///   that does not open.
    public func discardCurrent(ifItIs value: SecureBytes) throws -> Bool {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, value FROM credentials WHERE account_id = ? AND kind = ? AND slot = 'current'"),
                                         arguments: key) else { return false }
        let id: String = row[0], blob: Data = row[1]
        let stored: SecureBytes
        do {
            stored = try vault.keys.open(blob, kind: snapshot.kind.rawValue, recordID: "\(snapshot.accountID).\(id)", field: "value")
        } catch {
            throw VaultError.fieldAuthenticationFailed(account: snapshot.account, field: "\(snapshot.kind.rawValue) current")
        }
        guard stored.constantTimeEquals(value) else { return false }
        try discard(slot: "current")
        return true
    }

    /// Forgets a stored credential (after revocation).
    public func discard(slot: String) throws {
        try db.cachedStatement(sql: "DELETE FROM credentials WHERE account_id = ? AND kind = ? AND slot = ?").execute(arguments: key + [slot])
    }

    private func ensureRow() throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO issuance(account_id, kind) VALUES (?, ?)").execute(arguments: key)
    }

    /// Marks the account's credentials as rejected by KIS: no more requests until edited.
    public func markRejected(code: String?, message: String) throws {
        try ensureRow()
        try db.cachedStatement(sql: "UPDATE issuance SET rejected_code = ?, rejected_message = ?, last_error = ? WHERE account_id = ? AND kind = ?").execute(arguments: [code ?? "rejected", message, message] + key)
    }

    /// Remembers the last failure for `status`.
    public func recordError(_ message: String) throws {
        try ensureRow()
        try db.cachedStatement(sql: "UPDATE issuance SET last_error = ? WHERE account_id = ? AND kind = ?").execute(arguments: [message] + key)
    }

    /// Appends an audit entry in this transaction.
    public func audit(action: String, outcome: AuditEntry.Outcome = .ok, detail: String = "") throws {
        try auditor.append(db, entry: vault.auditEntry(action: action, account: snapshot.account, outcome: outcome, detail: detail))
    }
}

extension Vault {
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

    /// Reads the columns of ``snapshotSQL`` by position: by name, GRDB compares each
    /// column name case-insensitively, which a 10,000-row `status` or a bulk claim feels.
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

    /// Runs the one-account form of ``snapshotSQL`` and reads the row in place, from a
    /// cursor: `Row.fetchOne` would first copy it with all its column names.
    static func fetchSnapshot(_ statement: Statement, kind: CredentialKind, account: String) throws -> IssuanceSnapshot? {
        let rows = try Row.fetchCursor(statement, arguments: [kind.rawValue, account])
        // The row is read in place: the cursor must outlive the reads (released earlier, it
        // resets the statement and every column reads NULL).
        return try withExtendedLifetime(rows) { try rows.next().map(snapshot(from:)) }
    }

    /// The issuance state of every account (optionally with `tag`) for `kind`, by name.
    /// Needs no passphrase.
    public func issuanceSnapshots(kind: CredentialKind, tag: String? = nil) throws(VaultError) -> [IssuanceSnapshot] {
        try read { db in
            var sql = Self.snapshotSQL
            var arguments: StatementArguments = [kind.rawValue]
            if let tag {
                sql += " WHERE EXISTS (SELECT 1 FROM account_tags t WHERE t.account_id = a.id AND t.tag = ?2)"
                arguments += [tag]
            }
            // A cursor reads each value straight from SQLite; fetchAll would copy every row first.
            return try Array(Row.fetchCursor(db, sql: sql + " ORDER BY a.name", arguments: arguments).map(Self.snapshot(from:)))
        }
    }

    /// The issuance state of one account.
    /// - Throws: ``VaultError/accountNotFound(name:)``.
    public func issuanceSnapshot(account: String, kind: CredentialKind) throws(VaultError) -> IssuanceSnapshot {
        let found = try read { db in
            try Self.fetchSnapshot(db.cachedStatement(sql: Self.snapshotSQL + " WHERE a.name = ?2"), kind: kind, account: account)
        }
        guard let found else { throw .accountNotFound(name: account) }
        return found
    }
}

extension UnlockedVault {
    /// Seals an issued credential for `account`'s `kind` under a fresh record id. Done
    /// outside the transaction that stores it, so that a bulk run's commit holds the write
    /// lock only for the writes; `value` is the credential's UTF-8 text.
    public func sealCredential(_ value: UnsafeRawBufferPointer, for account: IssuanceSnapshot) -> SealedCredential {
        let id = hexString(randomBytes(16))
        let blob = keys.seal(value, kind: account.kind.rawValue, recordID: "\(account.accountID).\(id)", field: "value")
        return SealedCredential(accountID: account.accountID, kind: account.kind, id: id, blob: blob)
    }

    /// Opens the stored credential in `slot` (`current` or `previous`) with its times, or nil.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)`` when the sealed
    ///   value does not authenticate (altered, or moved from another account or kind).
    public func openCredential(account: String, kind: CredentialKind, slot: String = "current") throws(VaultError) -> (SecureBytes, CredentialTimes)? {
        let row = try vault.read { db in
            try Row.fetchOne(db.cachedStatement(sql: """
                SELECT c.account_id, c.id, c.value, c.issued_at, c.expires_at FROM credentials c JOIN accounts a ON a.id = c.account_id
                WHERE a.name = ? AND c.kind = ? AND c.slot = ?
                """), arguments: [account, kind.rawValue, slot])
        }
        guard let row else { return nil }
        let accountID: String = row[0], id: String = row[1], blob: Data = row[2]
        guard let issued = Timestamp.parse(row[3]), let expires = Timestamp.parse(row[4]) else {
            throw .damaged(path: vault.path, detail: "a credential of '\(account)' has an unreadable time")
        }
        do {
            let value = try keys.open(blob, kind: kind.rawValue, recordID: "\(accountID).\(id)", field: "value")
            return (value, CredentialTimes(issuedAt: issued, expiresAt: expires))
        } catch {
            throw .fieldAuthenticationFailed(account: account, field: "\(kind.rawValue) \(slot)")
        }
    }

    /// Runs `body` in an IMMEDIATE transaction with the account's current issuance state,
    /// so that reading the state and claiming or storing happen atomically with respect to
    /// every other process using the vault.
    public func withIssuance<T>(account: String, kind: CredentialKind, _ body: (IssuanceTransaction) throws -> T) throws(VaultError) -> T {
        try issuanceWrite { db, auditor in
            guard let snapshot = try Vault.fetchSnapshot(db.cachedStatement(sql: Vault.snapshotSQL + " WHERE a.name = ?2"),
                                                         kind: kind, account: account) else {
                throw VaultError.accountNotFound(name: account)
            }
            return try body(IssuanceTransaction(db: db, vault: self, auditor: auditor, snapshot: snapshot))
        }
    }

    /// ``withIssuance(account:kind:_:)`` for many accounts in one transaction: one commit
    /// (one fsync) instead of one per account, which is what lets a bulk run keep up with
    /// KIS at high concurrency. Unknown accounts are skipped.
    public func withIssuance<T>(accounts: [String], kind: CredentialKind, _ body: (IssuanceTransaction) throws -> T) throws(VaultError) -> [String: T] {
        guard !accounts.isEmpty else { return [:] }
        return try issuanceWrite { db, auditor in
            var results: [String: T] = [:]
            let statement = try db.cachedStatement(sql: Vault.snapshotSQL + " WHERE a.name = ?2")
            for account in accounts {
                guard let snapshot = try Vault.fetchSnapshot(statement, kind: kind, account: account) else { continue }
                results[account] = try body(IssuanceTransaction(db: db, vault: self, auditor: auditor, snapshot: snapshot))
            }
            return results
        }
    }

    /// Runs `body` for each of `claimed` in one IMMEDIATE transaction without reading the
    /// issuance state again: for recording the answers to requests whose leases were
    /// claimed with these snapshots (the lease is what keeps the state from moving in
    /// between). Accounts removed since are skipped; returns how many were not.
    @discardableResult
    public func withClaimed(_ claimed: [IssuanceSnapshot], _ body: (IssuanceTransaction) throws -> Void) throws(VaultError) -> Int {
        guard !claimed.isEmpty else { return 0 }
        return try issuanceWrite { db, auditor in
            let exists = try db.cachedStatement(sql: "SELECT 1 FROM accounts WHERE id = ?")
            var count = 0
            for snapshot in claimed where try Bool.fetchOne(exists, arguments: [snapshot.accountID]) != nil {
                try body(IssuanceTransaction(db: db, vault: self, auditor: auditor, snapshot: snapshot))
                count += 1
            }
            return count
        }
    }

    /// A write transaction whose audit entries share one read and one write of the chain's
    /// head.
    private func issuanceWrite<T>(_ body: (Database, AuditAppender) throws -> T) throws(VaultError) -> T {
        try vault.write { db in
            let auditor = AuditAppender(keys: keys)
            let result = try body(db, auditor)
            try auditor.finish(db)
            return result
        }
    }

    /// Opens the appkey and appsecret read with a claim. They come as text because they go
    /// into a request body next; no guarded buffer is mapped per call.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)``.
    public func openAppCredentials(_ sealed: SealedAppCredentials) throws(VaultError) -> (appkey: String, appsecret: String) {
        func open(_ blob: Data, _ field: AccountField) throws(VaultError) -> String {
            do {
                return try keys.openText(blob, kind: AccountField.kind, recordID: sealed.accountID, field: field.rawValue)
            } catch {
                throw .fieldAuthenticationFailed(account: sealed.account, field: field.rawValue)
            }
        }
        return (try open(sealed.appkey, .appkey), try open(sealed.appsecret, .appsecret))
    }
}
