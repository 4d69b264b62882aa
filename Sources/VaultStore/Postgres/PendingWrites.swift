import Foundation
import Logging
import NIOCore
import PostgresNIO
import VaultCrypto

/// A statement the server never answered: its connection closed first (nil), or it
/// waited `seconds`.
struct Unanswered: Error {
    let seconds: Int64?
}

/// The writes of one transaction that nobody reads the answer of (new accounts and their
/// tags, leases claimed, credentials stored, errors cleared, audit rows), held back and
/// sent as one statement per kind: a bulk commit of 64 accounts is a handful of round
/// trips instead of six per account. Any other statement, and COMMIT, sends them first,
/// so the transaction reads what it wrote; a write that would touch a row already held
/// back for the same purpose sends the batch first, so the order of changes to one row
/// is the order they were made. Rows travel as one JSON parameter each batch (bound, never
/// spliced into the SQL; binary fields in base64).
final class PendingWrites {
    struct AccountRow: Encodable {
        var id, name, environment: String
        var appkeyFp, appkey, appsecret: Data
        var accountNo, htsId: Data?
        var createdAt, updatedAt, secretsUpdatedAt: String
    }
    struct TagRow: Encodable { var accountId, tag: String }
    struct ClaimRow: Encodable { var accountId, kind, leaseOwner, leaseExpiresAt, lastRequestAt: String }
    struct CredentialRow: Encodable { var accountId, kind, id: String; var value: Data; var issuedAt, expiresAt: String }
    struct ClearRow: Encodable { var accountId, kind, owner: String }
    struct AuditRow: Encodable {
        var seq: Int64
        var at, actor: String
        var keyslot: String?
        var action: String
        var account: String?
        var outcome, detail: String
        var mac: Data
    }

    struct Batch {
        var accounts: [AccountRow] = []
        var tags: [TagRow] = []
        var claims: [ClaimRow] = []
        var credentials: [CredentialRow] = []
        var clears: [ClearRow] = []
        var audits: [AuditRow] = []
        /// The audit chain's new head, written after the rows.
        var auditHead: AuditHead?
    }

    private var batch = Batch()
    /// (account, kind) pairs held back by purpose, to tell when a write must wait its turn.
    private var stored: Set<String> = [], leased: Set<String> = []
    private(set) var isEmpty = true
    /// Whether new accounts are held (a read of the accounts table must send them first).
    var holdsAccounts: Bool { !batch.accounts.isEmpty }
    /// Whether a new audit head is held (a read of the head must send it first).
    var auditHeadIsHeld: Bool { batch.auditHead != nil }

    /// Rows sent so far by this transaction's batches.
    private(set) var sentRows = 0

    func take() -> Batch {
        defer { batch = Batch(); stored = []; leased = []; isEmpty = true }
        sentRows += batch.accounts.count + batch.tags.count + batch.claims.count + batch.credentials.count + batch.clears.count + batch.audits.count
        return batch
    }

    func add(account: SealedAccount, tags: [String], times: AccountTimes) {
        batch.accounts.append(AccountRow(id: account.id, name: account.name, environment: account.environment.rawValue,
                                         appkeyFp: account.appkeyFingerprint, appkey: account.appkey, appsecret: account.appsecret,
                                         accountNo: account.accountNumber, htsId: account.htsID, createdAt: times.createdAt,
                                         updatedAt: times.updatedAt, secretsUpdatedAt: times.secretsUpdatedAt))
        batch.tags += tags.map { TagRow(accountId: account.id, tag: $0) }
        isEmpty = false
    }

    /// Holds the audit chain's new head (a later one replaces it).
    func set(auditHead head: AuditHead) {
        batch.auditHead = head
        isEmpty = false
    }

    func add(audit record: AuditRecord, mac: Data) {
        batch.audits.append(AuditRow(seq: record.seq, at: record.at, actor: record.actor, keyslot: record.keyslot, action: record.action,
                                     account: record.account, outcome: record.outcome, detail: record.detail, mac: mac))
        isEmpty = false
    }

    /// Holds `credential` back; a second one for the same account and kind sends the
    /// first batch before (each replaces the one before it). Always true: held.
    func add(credential: StoredCredential, flushing flush: (PendingWrites) throws -> Void) throws -> Bool {
        let key = credential.accountID + "/" + credential.kind.rawValue
        if stored.contains(key) { try flush(self) }
        stored.insert(key)
        batch.credentials.append(CredentialRow(accountId: credential.accountID, kind: credential.kind.rawValue, id: credential.id,
                                               value: credential.value, issuedAt: credential.issuedAt, expiresAt: credential.expiresAt))
        isEmpty = false
        return true
    }

    /// Claims and clears change the same issuance row: one held back for a row already in
    /// the batch sends the batch first.
    func add(claim: ClaimRow, flushing flush: (PendingWrites) throws -> Void) throws -> Bool {
        try holdIssuanceChange(of: claim.accountId + "/" + claim.kind, flushing: flush) { $0.claims.append(claim) }
    }

    func add(clear: ClearRow, flushing flush: (PendingWrites) throws -> Void) throws -> Bool {
        try holdIssuanceChange(of: clear.accountId + "/" + clear.kind, flushing: flush) { $0.clears.append(clear) }
    }

    private func holdIssuanceChange(of key: String, flushing flush: (PendingWrites) throws -> Void, _ append: (inout Batch) -> Void) throws -> Bool {
        if leased.contains(key) { try flush(self) }
        leased.insert(key)
        append(&batch)
        isEmpty = false
        return true
    }

    static func json(_ rows: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(rows), as: UTF8.self)
    }
}
