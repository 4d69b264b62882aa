import Foundation
import VaultCrypto

/// One audit event before it is chained. Never holds a secret: accounts are named,
/// credentials are not.
public struct AuditEntry: Sendable, Equatable {
    public enum Outcome: String, Sendable, Codable { case ok, failed }

    public var actor: String
    public var keyslot: String?
    public var action: String
    public var account: String?
    public var outcome: Outcome
    public var detail: String

    public init(actor: String, keyslot: String?, action: String, account: String?, outcome: Outcome, detail: String) {
        self.actor = actor
        self.keyslot = keyslot
        self.action = action
        self.account = account
        self.outcome = outcome
        self.detail = detail
    }
}

/// A stored audit row.
public struct AuditRecord: Sendable, Codable, Equatable {
    public var seq: Int64
    public var at: String
    public var actor: String
    public var keyslot: String?
    public var action: String
    public var account: String?
    public var outcome: String
    public var detail: String

    public init(seq: Int64, at: String, actor: String, keyslot: String?, action: String, account: String?, outcome: String, detail: String) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.keyslot = keyslot
        self.action = action
        self.account = account
        self.outcome = outcome
        self.detail = detail
    }
}

/// The result of `audit verify`.
public struct AuditVerification: Sendable, Equatable {
    /// Rows checked.
    public var rows: Int
    /// Human-readable findings; empty when the chain is intact.
    public var problems: [String]
    public var isIntact: Bool { problems.isEmpty }
}

/// The append-only, MAC-chained audit log (docs/FORMAT.md, "Audit log").
///
/// `mac[n] = BLAKE2b-256(key: auditKey, prev_mac || encode(seq, at, actor, keyslot,
/// action, account, outcome, detail))` with `prev_mac` of the first row 32 zero bytes.
/// Changing, deleting or reordering a row breaks every later MAC; the head (`meta`
/// `audit_head_seq`/`audit_head_mac`) catches a deleted tail.
enum AuditLog {
    static func mac(previous: [UInt8], record: AuditRecord, key: SecureBytes) -> [UInt8] {
        var message = previous
        func field(_ text: String?) {
            guard let text else {
                // A NULL is encoded as length 0xFFFFFFFF, distinct from the empty string.
                message.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF])
                return
            }
            let bytes = Array(text.utf8)
            let n = UInt32(bytes.count)
            message.append(contentsOf: [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)])
            message.append(contentsOf: bytes)
        }
        field(String(record.seq))
        field(record.at)
        field(record.actor)
        field(record.keyslot)
        field(record.action)
        field(record.account)
        field(record.outcome)
        field(record.detail)
        return key.withUnsafeBytes { KeyedHash.hash(message, key: $0) }
    }

    static func append(_ records: any VaultRecords, keys: VaultKeys, entry: AuditEntry) throws {
        let appender = AuditAppender(keys: keys)
        try appender.append(records, entry: entry)
        try appender.finish(records)
    }
}

/// Appends entries to the chain inside one transaction: the head is read at the first
/// entry and written once by ``finish(_:)``, so a batch of a hundred entries costs a hundred
/// inserts rather than five hundred statements. Used by one transaction, on its thread.
final class AuditAppender {
    private let keys: VaultKeys
    private var head: (seq: Int64, mac: [UInt8])?
    private var dirty = false

    init(keys: VaultKeys) { self.keys = keys }

    func append(_ records: any VaultRecords, entry: AuditEntry) throws {
        let previous = try head ?? readHead(records)
        let record = AuditRecord(
            seq: previous.seq + 1, at: Timestamp.string(Date()), actor: entry.actor, keyslot: entry.keyslot,
            action: entry.action, account: entry.account, outcome: entry.outcome.rawValue, detail: entry.detail)
        let mac = AuditLog.mac(previous: previous.mac, record: record, key: keys.audit)
        try records.appendAudit(record, mac: Data(mac))
        head = (record.seq, mac)
        dirty = true
    }

    /// Records the new head; must run before the transaction commits.
    func finish(_ records: any VaultRecords) throws {
        guard dirty, let head else { return }
        try records.setAuditHead(AuditHead(seq: head.seq, mac: Data(head.mac)))
        dirty = false
    }

    private func readHead(_ records: any VaultRecords) throws -> (seq: Int64, mac: [UInt8]) {
        guard let head = try records.auditHead() else { return (0, [UInt8](repeating: 0, count: 32)) }
        return (head.seq, [UInt8](head.mac))
    }
}

extension Vault {
    /// Audit rows, oldest first, optionally for one account and from a time on. No
    /// passphrase needed: the log holds no secret.
    public func auditRecords(account: String? = nil, since: Date? = nil) throws(VaultError) -> [AuditRecord] {
        try read { records in try records.auditRecords(account: account, since: since.map(Timestamp.string)) }
    }

    /// When the last audit row was appended (the agent's metrics), nil for an empty log.
    public func lastAuditTime() throws(VaultError) -> Date? {
        try readStatement { records in try records.lastAuditRow().flatMap { Timestamp.parse($0.0.at) } }
    }
}

extension UnlockedVault {
    /// Walks the chain and reports every row whose MAC does not follow from its
    /// predecessor, every gap in the sequence, and a head that does not match the last row.
    public func verifyAudit() throws(VaultError) -> AuditVerification {
        try vault.read { records in
            var problems: [String] = []
            var previous = [UInt8](repeating: 0, count: 32)
            var expectedSeq: Int64 = 1
            var count = 0
            try records.forEachAuditRow { record, mac in
                count += 1
                let stored = [UInt8](mac)
                if record.seq != expectedSeq {
                    problems.append("rows \(expectedSeq)...\(record.seq - 1) are missing (deleted)")
                }
                if !constantTimeEqual(AuditLog.mac(previous: previous, record: record, key: keys.audit), stored) {
                    problems.append("row \(record.seq) (\(record.at) \(record.action)) does not match the chain: altered, reordered, or its predecessor was removed")
                }
                previous = stored
                expectedSeq = record.seq + 1
            }
            let head = try records.auditHead()
            let headSeq = head?.seq ?? 0
            if headSeq != expectedSeq - 1 {
                problems.append("the log ends at row \(expectedSeq - 1) but its head records row \(headSeq): rows at the end were deleted")
            } else if let head, !constantTimeEqual([UInt8](head.mac), previous) {
                problems.append("the last row does not match the recorded head: it was altered")
            }
            return AuditVerification(rows: count, problems: problems)
        }
    }
}
