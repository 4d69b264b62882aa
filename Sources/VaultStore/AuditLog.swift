import Foundation
import GRDB
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

    static func append(_ db: Database, keys: VaultKeys, entry: AuditEntry) throws {
        let appender = AuditAppender(keys: keys)
        try appender.append(db, entry: entry)
        try appender.finish(db)
    }

    /// The columns every audit query selects first, in the order ``record(_:)`` reads them.
    static let columns = "seq, at, actor, keyslot, action, account, outcome, detail"

    /// Reads ``columns`` by position (cheaper than by name on long logs).
    static func record(_ row: Row) -> AuditRecord {
        AuditRecord(seq: row[0], at: row[1], actor: row[2], keyslot: row[3], action: row[4],
                    account: row[5], outcome: row[6], detail: row[7])
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

    func append(_ db: Database, entry: AuditEntry) throws {
        let previous = try head ?? readHead(db)
        let record = AuditRecord(
            seq: previous.seq + 1, at: Timestamp.string(Date()), actor: entry.actor, keyslot: entry.keyslot,
            action: entry.action, account: entry.account, outcome: entry.outcome.rawValue, detail: entry.detail)
        let mac = AuditLog.mac(previous: previous.mac, record: record, key: keys.audit)
        try db.cachedStatement(sql: """
            INSERT INTO audit(seq, at, actor, keyslot, action, account, outcome, detail, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [record.seq, record.at, record.actor, record.keyslot, record.action, record.account, record.outcome, record.detail, Data(mac)])
        head = (record.seq, mac)
        dirty = true
    }

    /// Records the new head; must run before the transaction commits.
    func finish(_ db: Database) throws {
        guard dirty, let head else { return }
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_head_seq', ?), ('audit_head_mac', ?)")
            .execute(arguments: [head.seq, Data(head.mac)])
        dirty = false
    }

    private func readHead(_ db: Database) throws -> (seq: Int64, mac: [UInt8]) {
        let seq = try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'audit_head_seq'")) ?? 0
        let mac = try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'audit_head_mac'")).map { [UInt8]($0) }
            ?? [UInt8](repeating: 0, count: 32)
        return (seq, mac)
    }
}

extension Vault {
    /// Audit rows, oldest first, optionally for one account and from a time on. No
    /// passphrase needed: the log holds no secret.
    public func auditRecords(account: String? = nil, since: Date? = nil) throws(VaultError) -> [AuditRecord] {
        try read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let account { clauses.append("account = ?"); arguments += [account] }
            if let since { clauses.append("at >= ?"); arguments += [Timestamp.string(since)] }
            let whereSQL = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
            return try Array(Row.fetchCursor(db, sql: "SELECT \(AuditLog.columns) FROM audit\(whereSQL) ORDER BY seq", arguments: arguments)
                .map(AuditLog.record))
        }
    }
}

extension UnlockedVault {
    /// Walks the chain and reports every row whose MAC does not follow from its
    /// predecessor, every gap in the sequence, and a head that does not match the last row.
    public func verifyAudit() throws(VaultError) -> AuditVerification {
        try vault.read { db in
            var problems: [String] = []
            var previous = [UInt8](repeating: 0, count: 32)
            var expectedSeq: Int64 = 1
            var count = 0
            let rows = try Row.fetchCursor(db, sql: "SELECT \(AuditLog.columns), mac FROM audit ORDER BY seq")
            while let row = try rows.next() {
                count += 1
                let record = AuditLog.record(row)
                let stored = [UInt8](row[8] as Data)
                if record.seq != expectedSeq {
                    problems.append("rows \(expectedSeq)...\(record.seq - 1) are missing (deleted)")
                }
                if !constantTimeEqual(AuditLog.mac(previous: previous, record: record, key: keys.audit), stored) {
                    problems.append("row \(record.seq) (\(record.at) \(record.action)) does not match the chain: altered, reordered, or its predecessor was removed")
                }
                previous = stored
                expectedSeq = record.seq + 1
            }
            let headSeq = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'audit_head_seq'") ?? 0
            let headMAC = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'audit_head_mac'").map { [UInt8]($0) }
            if headSeq != expectedSeq - 1 {
                problems.append("the log ends at row \(expectedSeq - 1) but its head records row \(headSeq): rows at the end were deleted")
            } else if let headMAC, !constantTimeEqual(headMAC, previous) {
                problems.append("the last row does not match the recorded head: it was altered")
            }
            return AuditVerification(rows: count, problems: problems)
        }
    }
}
