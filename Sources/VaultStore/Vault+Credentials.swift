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

/// The changes a key-manager step may make inside one IMMEDIATE transaction.
public struct IssuanceTransaction {
    let db: Database
    let vault: UnlockedVault
    public let snapshot: IssuanceSnapshot

    private func ensureRow() throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO issuance(account_id, kind) VALUES (?, ?)").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue])
    }

    /// Takes the issuance lease until `until`.
    public func claimLease(owner: String, until: Date) throws {
        try ensureRow()
        try db.cachedStatement(sql: "UPDATE issuance SET lease_owner = ?, lease_expires_at = ? WHERE account_id = ? AND kind = ?").execute(arguments: [owner, Timestamp.string(until), snapshot.accountID, snapshot.kind.rawValue])
    }

    /// Records that a request to KIS is about to be sent (the once-a-minute clock).
    public func recordRequest(at date: Date) throws {
        try ensureRow()
        try db.cachedStatement(sql: "UPDATE issuance SET last_request_at = ? WHERE account_id = ? AND kind = ?").execute(arguments: [Timestamp.string(date), snapshot.accountID, snapshot.kind.rawValue])
    }

    /// Releases the lease if `owner` still holds it.
    public func releaseLease(owner: String) throws {
        try db.cachedStatement(sql: "UPDATE issuance SET lease_owner = NULL, lease_expires_at = NULL WHERE account_id = ? AND kind = ? AND lease_owner = ?").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue, owner])
    }

    /// Stores a newly issued credential as current; the old current becomes previous.
    /// Sealed under a key bound to the account, kind and a fresh record id.
    public func store(_ value: SecureBytes, times: CredentialTimes) throws {
        try ensureRow()
        let id = hexString(randomBytes(16))
        let sealed = vault.sealCredential(value, accountID: snapshot.accountID, kind: snapshot.kind, credentialID: id)
        try db.cachedStatement(sql: "DELETE FROM credentials WHERE account_id = ? AND kind = ? AND slot = 'previous'").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue])
        try db.cachedStatement(sql: "UPDATE credentials SET slot = 'previous' WHERE account_id = ? AND kind = ? AND slot = 'current'").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue])
        try db.cachedStatement(sql: "INSERT INTO credentials(account_id, kind, slot, id, value, issued_at, expires_at) VALUES (?, ?, 'current', ?, ?, ?, ?)").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue, id, sealed, Timestamp.string(times.issuedAt), Timestamp.string(times.expiresAt)])
        try db.cachedStatement(sql: "UPDATE issuance SET last_error = NULL WHERE account_id = ? AND kind = ?").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue])
    }

    /// Forgets a stored credential (after revocation).
    public func discard(slot: String) throws {
        try db.cachedStatement(sql: "DELETE FROM credentials WHERE account_id = ? AND kind = ? AND slot = ?").execute(arguments: [snapshot.accountID, snapshot.kind.rawValue, slot])
    }

    /// Marks the account's credentials as rejected by KIS: no more requests until edited.
    public func markRejected(code: String?, message: String) throws {
        try ensureRow()
        try db.cachedStatement(sql: "UPDATE issuance SET rejected_code = ?, rejected_message = ?, last_error = ? WHERE account_id = ? AND kind = ?").execute(arguments: [code ?? "rejected", message, message, snapshot.accountID, snapshot.kind.rawValue])
    }

    /// Remembers the last failure for `status`.
    public func recordError(_ message: String) throws {
        try ensureRow()
        try db.cachedStatement(sql: "UPDATE issuance SET last_error = ? WHERE account_id = ? AND kind = ?").execute(arguments: [message, snapshot.accountID, snapshot.kind.rawValue])
    }

    /// Appends an audit entry in this transaction.
    public func audit(action: String, outcome: AuditEntry.Outcome = .ok, detail: String = "") throws {
        try vault.audit(db, action: action, account: snapshot.account, outcome: outcome, detail: detail)
    }
}

extension Vault {
    static let snapshotSQL = """
        SELECT a.id, a.name, a.environment, k.kind,
               c.issued_at AS c_issued, c.expires_at AS c_expires, p.issued_at AS p_issued, p.expires_at AS p_expires,
               i.lease_owner, i.lease_expires_at, i.last_request_at, i.rejected_code, i.rejected_message, i.last_error
        FROM accounts a
        JOIN (SELECT 'approval' AS kind UNION ALL SELECT 'token') k
        LEFT JOIN credentials c ON c.account_id = a.id AND c.kind = k.kind AND c.slot = 'current'
        LEFT JOIN credentials p ON p.account_id = a.id AND p.kind = k.kind AND p.slot = 'previous'
        LEFT JOIN issuance i ON i.account_id = a.id AND i.kind = k.kind
        """

    static func snapshot(from row: Row) -> IssuanceSnapshot {
        func date(_ column: String) -> Date? { (row[column] as String?).flatMap(Timestamp.parse) }
        func times(_ issued: String, _ expires: String) -> CredentialTimes? {
            guard let i = date(issued), let e = date(expires) else { return nil }
            return CredentialTimes(issuedAt: i, expiresAt: e)
        }
        return IssuanceSnapshot(
            accountID: row["id"], account: row["name"], environment: AccountEnvironment(rawValue: row["environment"]) ?? .mock,
            kind: CredentialKind(rawValue: row["kind"]) ?? .approval,
            current: times("c_issued", "c_expires"), previous: times("p_issued", "p_expires"),
            leaseOwner: row["lease_owner"], leaseExpiresAt: date("lease_expires_at"), lastRequestAt: date("last_request_at"),
            rejectedCode: row["rejected_code"], rejectedMessage: row["rejected_message"], lastError: row["last_error"])
    }

    /// The issuance state of every account (optionally with `tag`) for `kind`, by name.
    /// Needs no passphrase.
    public func issuanceSnapshots(kind: CredentialKind, tag: String? = nil) throws(VaultError) -> [IssuanceSnapshot] {
        try read { db in
            var sql = Self.snapshotSQL + " WHERE k.kind = ?"
            var arguments: StatementArguments = [kind.rawValue]
            if let tag {
                sql += " AND EXISTS (SELECT 1 FROM account_tags t WHERE t.account_id = a.id AND t.tag = ?)"
                arguments += [tag]
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY a.name", arguments: arguments).map(Self.snapshot(from:))
        }
    }

    /// The issuance state of one account.
    /// - Throws: ``VaultError/accountNotFound(name:)``.
    public func issuanceSnapshot(account: String, kind: CredentialKind) throws(VaultError) -> IssuanceSnapshot {
        let found = try read { db in
            try Row.fetchOne(db, sql: Self.snapshotSQL + " WHERE k.kind = ? AND a.name = ?", arguments: [kind.rawValue, account])
        }
        guard let found else { throw .accountNotFound(name: account) }
        return Self.snapshot(from: found)
    }
}

extension UnlockedVault {
    func sealCredential(_ value: SecureBytes, accountID: String, kind: CredentialKind, credentialID: String) -> Data {
        keys.seal(value, kind: kind.rawValue, recordID: "\(accountID).\(credentialID)", field: "value")
    }

    /// Opens the stored credential in `slot` (`current` or `previous`) with its times, or nil.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)`` when the sealed
    ///   value does not authenticate (altered, or moved from another account or kind).
    public func openCredential(account: String, kind: CredentialKind, slot: String = "current") throws(VaultError) -> (SecureBytes, CredentialTimes)? {
        let row = try vault.read { db in
            try Row.fetchOne(db, sql: """
                SELECT c.account_id, c.id, c.value, c.issued_at, c.expires_at FROM credentials c JOIN accounts a ON a.id = c.account_id
                WHERE a.name = ? AND c.kind = ? AND c.slot = ?
                """, arguments: [account, kind.rawValue, slot])
        }
        guard let row else { return nil }
        let accountID: String = row["account_id"], id: String = row["id"], blob: Data = row["value"]
        guard let issued = Timestamp.parse(row["issued_at"]), let expires = Timestamp.parse(row["expires_at"]) else {
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
        try vault.write { db in
            guard let row = try Row.fetchOne(db, sql: Vault.snapshotSQL + " WHERE k.kind = ? AND a.name = ?", arguments: [kind.rawValue, account]) else {
                throw VaultError.accountNotFound(name: account)
            }
            return try body(IssuanceTransaction(db: db, vault: self, snapshot: Vault.snapshot(from: row)))
        }
    }
}

extension UnlockedVault {
    /// ``withIssuance(account:kind:_:)`` for many accounts in one transaction: one commit
    /// (one fsync) instead of one per account, which is what lets a bulk run keep up with
    /// KIS at high concurrency. Unknown accounts are skipped.
    public func withIssuance<T>(accounts: [String], kind: CredentialKind, _ body: (IssuanceTransaction) throws -> T) throws(VaultError) -> [String: T] {
        guard !accounts.isEmpty else { return [:] }
        return try vault.write { db in
            var results: [String: T] = [:]
            let statement = try db.cachedStatement(sql: Vault.snapshotSQL + " WHERE k.kind = ? AND a.name = ?")
            for account in accounts {
                guard let row = try Row.fetchOne(statement, arguments: [kind.rawValue, account]) else { continue }
                results[account] = try body(IssuanceTransaction(db: db, vault: self, snapshot: Vault.snapshot(from: row)))
            }
            return results
        }
    }
}
