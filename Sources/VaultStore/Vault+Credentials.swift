import Foundation
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

    /// How far ahead of the clock a recorded time may be and still be believed: the clocks
    /// of machines sharing a vault agree to well within it.
    public static let futureSlack: TimeInterval = 300

    /// False for times no clock could have written by `now`: issued in the future, or
    /// expiring later than `longest` from now (a clock that ran ahead and was corrected,
    /// a row edited to year 9999). Such a credential is issued again, never handed out
    /// or skipped as fresh.
    public func isBelievable(at now: Date, longest: TimeInterval) -> Bool {
        issuedAt <= now.addingTimeInterval(Self.futureSlack) && expiresAt > issuedAt
            && expiresAt <= now.addingTimeInterval(longest + Self.futureSlack)
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

/// The changes a key-manager step may make inside one write transaction.
public struct IssuanceTransaction {
    let records: any VaultRecords
    let vault: UnlockedVault
    let auditor: AuditAppender
    /// The account's issuance state when the transaction read it, or, in
    /// ``UnlockedVault/withClaimed(_:_:)``, when its lease was claimed.
    public let snapshot: IssuanceSnapshot
    /// The account's sealed appkey and appsecret when read with the snapshot (a batch).
    var app: (appkey: Data, appsecret: Data)? = nil

    /// Takes the issuance lease until `until` and records that a request to KIS is about
    /// to be sent (the once-a-minute clock), in one change. Recorded before the request:
    /// if the process dies after KIS answered, the minute still counts.
    public func claim(owner: String, until: Date, requestAt date: Date) throws {
        try records.claimLease(accountID: snapshot.accountID, kind: snapshot.kind, owner: owner,
                               until: Timestamp.string(until), requestAt: Timestamp.string(date))
    }

    /// Extends the lease `owner` claimed to `until` and moves the request time to `date`
    /// (a claim made ahead of its request); false when `owner` no longer holds the lease
    /// (it ran out and another process took it over), and nothing is changed.
    public func renewClaim(owner: String, until: Date, requestAt date: Date) throws -> Bool {
        try records.renewLease(accountID: snapshot.accountID, kind: snapshot.kind, owner: owner,
                               until: Timestamp.string(until), requestAt: Timestamp.string(date))
    }

    /// The account's sealed appkey and appsecret, for the request this transaction claims.
    /// - Throws: ``VaultError/accountNotFound(name:)`` if the account is gone.
    public func sealedAppCredentials() throws -> SealedAppCredentials {
        guard let (appkey, appsecret) = try app ?? records.sealedAppCredentials(accountID: snapshot.accountID) else {
            throw VaultError.accountNotFound(name: snapshot.account)
        }
        return SealedAppCredentials(accountID: snapshot.accountID, account: snapshot.account, environment: snapshot.environment,
                                    appkey: appkey, appsecret: appsecret)
    }

    /// Whether the lease holder `owner` is alive as far as the storage can tell (a team
    /// vault sees its clients' sessions); nil when it cannot.
    public func leaseHolderAlive(_ owner: String) throws -> Bool? {
        try records.leaseHolderAlive(owner)
    }

    /// Releases the lease if `owner` still holds it.
    public func releaseLease(owner: String) throws {
        try records.releaseLease(accountID: snapshot.accountID, kind: snapshot.kind, owner: owner)
    }

    /// Stores a newly issued credential as current (the old current becomes previous),
    /// clears the last error and releases the lease if `owner` still holds it.
    public func store(_ sealed: SealedCredential, times: CredentialTimes, releasingLeaseOf owner: String) throws {
        // Sealed under a key bound to this account and kind: stored anywhere else it would
        // never open again.
        precondition(sealed.accountID == snapshot.accountID && sealed.kind == snapshot.kind, "credential sealed for another account")
        try records.storeCurrent(StoredCredential(
            accountID: sealed.accountID, account: snapshot.account, kind: sealed.kind, slot: .current, id: sealed.id,
            value: sealed.blob, issuedAt: Timestamp.string(times.issuedAt), expiresAt: Timestamp.string(times.expiresAt)))
        try records.clearError(accountID: snapshot.accountID, kind: snapshot.kind, releasingLeaseOf: owner)
    }

    /// Forgets the current credential if it is `value` (compared in constant time), and
    /// says whether it did: a caller reporting a dead token drops it only while it is still
    /// the stored one, so reports of an already replaced token change nothing.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)`` for a stored value
    ///   that does not open.
    public func discardCurrent(ifItIs value: SecureBytes) throws -> Bool {
        guard let stored = try records.credential(accountID: snapshot.accountID, kind: snapshot.kind, slot: .current) else { return false }
        let opened: SecureBytes
        do {
            opened = try vault.openField(stored.value, kind: snapshot.kind.rawValue, recordID: stored.recordID, binding: .credential(snapshot.account), field: "value")
        } catch {
            throw VaultError.fieldAuthenticationFailed(account: snapshot.account, field: "\(snapshot.kind.rawValue) current")
        }
        guard opened.constantTimeEquals(value) else { return false }
        try discard(slot: .current)
        return true
    }

    /// Forgets a stored credential (after revocation).
    public func discard(slot: CredentialSlot) throws {
        try records.deleteCredential(accountID: snapshot.accountID, kind: snapshot.kind, slot: slot)
    }

    /// Marks the account's credentials as rejected by KIS: no more requests until edited.
    public func markRejected(code: String?, message: String) throws {
        try records.markRejected(accountID: snapshot.accountID, kind: snapshot.kind, code: code ?? "rejected", message: message)
    }

    /// Remembers the last failure for `status`.
    public func recordError(_ message: String) throws {
        try records.recordError(accountID: snapshot.accountID, kind: snapshot.kind, message: message)
    }

    /// Appends an audit entry in this transaction.
    public func audit(action: String, outcome: AuditEntry.Outcome = .ok, detail: String = "") throws {
        try auditor.append(records, entry: vault.auditEntry(action: action, account: snapshot.account, outcome: outcome, detail: detail))
    }
}

extension Vault {
    /// The issuance state of every account (optionally with `tag`) for `kind`, by name.
    /// Needs no passphrase.
    public func issuanceSnapshots(kind: CredentialKind, tag: String? = nil) throws(VaultError) -> [IssuanceSnapshot] {
        try read { records in try records.issuanceSnapshots(kind: kind, tag: tag) }
    }

    /// The issuance state of one account and, when a lease is held, whether its holder is
    /// alive as far as the storage can tell: one read, for a process waiting on another's
    /// issuance to look again without taking the write lock.
    /// - Throws: ``VaultError/accountNotFound(name:)``.
    public func leaseState(account: String, kind: CredentialKind) throws(VaultError) -> (IssuanceSnapshot, holderAlive: Bool?) {
        let found = try read { records -> (IssuanceSnapshot, Bool?)? in
            guard let snapshot = try records.issuanceSnapshot(account: account, kind: kind) else { return nil }
            return (snapshot, try snapshot.leaseOwner.flatMap { try records.leaseHolderAlive($0) })
        }
        guard let found else { throw .accountNotFound(name: account) }
        return found
    }

    /// The issuance state of one account.
    /// - Throws: ``VaultError/accountNotFound(name:)``.
    public func issuanceSnapshot(account: String, kind: CredentialKind) throws(VaultError) -> IssuanceSnapshot {
        let found = try read { records in try records.issuanceSnapshot(account: account, kind: kind) }
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
        let blob = keys.seal(value, kind: account.kind.rawValue, recordID: "\(account.accountID).\(id)", binding: .credential(account.account), field: "value")
        return SealedCredential(accountID: account.accountID, kind: account.kind, id: id, blob: blob)
    }

    /// Opens the stored credential in `slot` (`current` or `previous`) with its times, or nil.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)`` when the sealed
    ///   value does not authenticate (altered, or moved from another account or kind).
    public func openCredential(account: String, kind: CredentialKind, slot: CredentialSlot = .current) throws(VaultError) -> (SecureBytes, CredentialTimes)? {
        guard let stored = try vault.readStatement({ records in try records.credential(account: account, kind: kind, slot: slot) }) else { return nil }
        return try open(stored)
    }

    /// Opens a stored credential read in a transaction of the caller's.
    func open(_ stored: StoredCredential) throws(VaultError) -> (SecureBytes, CredentialTimes) {
        guard let issued = Timestamp.parse(stored.issuedAt), let expires = Timestamp.parse(stored.expiresAt) else {
            throw .damaged(path: vault.path, detail: "a credential of '\(stored.account)' has an unreadable time")
        }
        do {
            let value = try openField(stored.value, kind: stored.kind.rawValue, recordID: stored.recordID, binding: .credential(stored.account), field: "value")
            return (value, CredentialTimes(issuedAt: issued, expiresAt: expires))
        } catch {
            throw .fieldAuthenticationFailed(account: stored.account, field: "\(stored.kind.rawValue) \(stored.slot.rawValue)")
        }
    }

    /// Runs `body` in a write transaction with the account's current issuance state,
    /// so that reading the state and claiming or storing happen atomically with respect to
    /// every other process using the vault.
    public func withIssuance<T>(account: String, kind: CredentialKind, _ body: (IssuanceTransaction) throws -> T) throws(VaultError) -> T {
        try issuanceWrite { records, auditor in
            guard let snapshot = try records.issuanceSnapshot(account: account, kind: kind) else {
                throw VaultError.accountNotFound(name: account)
            }
            return try body(IssuanceTransaction(records: records, vault: self, auditor: auditor, snapshot: snapshot))
        }
    }

    /// ``withIssuance(account:kind:_:)`` for many accounts in one transaction: one commit
    /// (one fsync) instead of one per account, which is what lets a bulk run keep up with
    /// KIS at high concurrency. Unknown accounts are skipped, a name given twice is decided once.
    /// The accounts' sealed appkeys and appsecrets are read together with their state (one
    /// statement on a server, not one per claim).
    public func withIssuance<T>(accounts: [String], kind: CredentialKind, _ body: (IssuanceTransaction) throws -> T) throws(VaultError) -> [String: T] {
        guard !accounts.isEmpty else { return [:] }
        return try issuanceWrite { records, auditor in
            let snapshots = Dictionary(try records.issuanceSnapshots(accounts: accounts, kind: kind).map { ($0.account, $0) },
                                       uniquingKeysWith: { first, _ in first })
            let apps = try records.sealedAppCredentials(accountIDs: snapshots.values.map(\.accountID))
            var results: [String: T] = [:]
            for account in accounts where results[account] == nil {
                guard let snapshot = snapshots[account] else { continue }
                var tx = IssuanceTransaction(records: records, vault: self, auditor: auditor, snapshot: snapshot)
                tx.app = apps[snapshot.accountID]
                results[account] = try body(tx)
            }
            return results
        }
    }

    /// Runs `body` for each of `claimed` in one write transaction without reading the
    /// issuance state again: for recording the answers to requests whose leases were
    /// claimed with these snapshots (the lease is what keeps the state from moving in
    /// between). Accounts removed since are skipped; returns how many were not.
    @discardableResult
    public func withClaimed(_ claimed: [IssuanceSnapshot], _ body: (IssuanceTransaction) throws -> Void) throws(VaultError) -> Int {
        guard !claimed.isEmpty else { return 0 }
        return try issuanceWrite { records, auditor in
            let existing = try records.existingAccountIDs(claimed.map(\.accountID))
            var count = 0
            for snapshot in claimed where existing.contains(snapshot.accountID) {
                try body(IssuanceTransaction(records: records, vault: self, auditor: auditor, snapshot: snapshot))
                count += 1
            }
            return count
        }
    }

    /// A write transaction whose audit entries share one read and one write of the chain's
    /// head.
    private func issuanceWrite<T>(_ body: (any VaultRecords, AuditAppender) throws -> T) throws(VaultError) -> T {
        try vault.write { records in
            let auditor = AuditAppender(keys: keys)
            let result = try body(records, auditor)
            try auditor.finish(records)
            return result
        }
    }

    /// Opens the appkey and appsecret read with a claim. They come as text because they go
    /// into a request body next; no guarded buffer is mapped per call.
    /// - Throws: ``VaultError/fieldAuthenticationFailed(account:field:)``.
    public func openAppCredentials(_ sealed: SealedAppCredentials) throws(VaultError) -> (appkey: String, appsecret: String) {
        func open(_ blob: Data, _ field: AccountField) throws(VaultError) -> String {
            do {
                return try openFieldText(blob, kind: AccountField.kind, recordID: sealed.accountID, binding: .account(sealed.environment, sealed.account), field: field.rawValue)
            } catch {
                throw .fieldAuthenticationFailed(account: sealed.account, field: field.rawValue)
            }
        }
        return (try open(sealed.appkey, .appkey), try open(sealed.appsecret, .appsecret))
    }
}
