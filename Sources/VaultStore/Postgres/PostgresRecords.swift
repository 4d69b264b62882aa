import Foundation
import Logging
import NIOCore
import PostgresNIO
import VaultCrypto

/// The vault's records in one PostgreSQL transaction: every statement of a team vault.
/// The tables are docs/FORMAT.md's, in a schema of their own; text columns that are
/// sorted are `COLLATE "C"`, so listings come out in the same (byte) order as from SQLite.
struct PostgresRecords: VaultRecords {
    let connection: PostgresConnection
    let schema: String
    let logger: Logger
    /// This process's presence locks (see ``PostgresPresence``).
    let presence: PostgresPresence?
    /// The writes held back in this transaction; nil outside one (each write goes at once).
    let pending: PendingWrites?

    /// Runs one statement and returns its rows, after the writes held back (so it sees
    /// them). Blocks this thread (never an event loop's: the storage is used from the
    /// callers' threads, as SQLite is).
    @discardableResult
    func run(_ query: PostgresQuery) throws -> [PostgresRow] {
        if let pending, !pending.isEmpty { try flush(pending) }
        return try execute(query)
    }

    /// How long any statement may go unanswered on a live connection. A statement that
    /// waits for the vault's lock gives up sooner, at the server's lock_timeout; this
    /// bounds what nothing else does (a server that stopped answering, a cut network).
    static let unansweredAfter: Int64 = 120

    /// One statement, answered, failed, or given up: within a second of the connection
    /// closing under it (a statement sent as the server shut the session down is otherwise
    /// never failed by PostgresNIO, and the caller would wait forever), or after
    /// ``unansweredAfter``.
    @discardableResult
    private func execute(_ query: PostgresQuery) throws -> [PostgresRow] {
        try Self.answer(query, on: connection, logger: logger)
    }

    /// ``execute(_:)`` on any connection (the presence session's, a clock reading's).
    static func answer(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) throws -> [PostgresRow] {
        try wait(for: connection.query(query, logger: logger), on: connection).rows
    }

    /// Statements whose rows nobody reads, handed to the connection at once: it sends
    /// each as the one before is answered, and this thread waits once instead of once per
    /// statement (a wake-up each way, most of a statement's time on loopback). The first
    /// failure is thrown; the statements after it fail too (the transaction is aborted).
    static func answer(_ queries: [PostgresQuery], on connection: PostgresConnection, logger: Logger) throws {
        let sent = queries.map { connection.query($0, logger: logger) }
        let all = EventLoopFuture.whenAllComplete(sent, on: connection.eventLoop).flatMapThrowing { results in
            for case .failure(let error) in results { throw error }
        }
        try wait(for: all, on: connection)
    }

    /// Waits for `future`, which a statement on `connection` completes.
    private static func wait<T: Sendable>(for future: EventLoopFuture<T>, on connection: PostgresConnection) throws -> T {
        let answer = connection.eventLoop.makePromise(of: T.self)
        future.cascade(to: answer)
        // Looked at once a second while unanswered (most statements never see it run): a
        // callback on the connection's close would pile up on a pooled connection.
        let started = NIODeadline.now()
        let watch = connection.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            if connection.isClosed {
                answer.fail(Unanswered(seconds: nil))
            } else if NIODeadline.now() - started > .seconds(Self.unansweredAfter) {
                answer.fail(Unanswered(seconds: Self.unansweredAfter))
            }
        }
        defer { watch.cancel() }
        return try answer.futureResult.wait()
    }

    /// Begins a transaction with `statements` (BEGIN, and for a write the vault's lock).
    func begin(_ statements: [PostgresQuery]) throws {
        try Self.answer(statements, on: connection, logger: logger)
    }

    /// Sends what `pending` holds.
    func flush(_ pending: PendingWrites) throws {
        try Self.answer(try statements(sending: pending), on: connection, logger: logger)
    }

    /// Sends what the transaction holds back and COMMIT, waited for once.
    func commit() throws {
        let held = try pending.map(statements(sending:)) ?? []
        try Self.answer(held + ["COMMIT"], on: connection, logger: logger)
    }

    /// The statements that send what `pending` holds: one per kind of row, whatever the
    /// number of rows, in an order that keeps every reference valid (accounts before their
    /// tags).
    private func statements(sending pending: PendingWrites) throws -> [PostgresQuery] {
        let batch = pending.take()
        var statements: [PostgresQuery] = []
        if !batch.accounts.isEmpty {
            statements.append("""
                INSERT INTO \(unescaped: s).accounts(id, name, environment, appkey_fp, appkey, appsecret, account_no, hts_id, created_at, updated_at, secrets_updated_at)
                SELECT id, name, environment, decode(appkey_fp, 'base64'), decode(appkey, 'base64'), decode(appsecret, 'base64'),
                       decode(account_no, 'base64'), decode(hts_id, 'base64'), created_at, updated_at, secrets_updated_at
                FROM jsonb_to_recordset(\(try PendingWrites.json(batch.accounts))::jsonb) AS x(id text, name text, environment text, appkey_fp text,
                     appkey text, appsecret text, account_no text, hts_id text, created_at text, updated_at text, secrets_updated_at text)
                """)
        }
        if !batch.tags.isEmpty {
            statements.append("""
                INSERT INTO \(unescaped: s).account_tags(account_id, tag)
                SELECT account_id, tag FROM jsonb_to_recordset(\(try PendingWrites.json(batch.tags))::jsonb) AS x(account_id text, tag text)
                ON CONFLICT DO NOTHING
                """)
        }
        if !batch.claims.isEmpty {
            statements.append("""
                INSERT INTO \(unescaped: s).issuance(account_id, kind, lease_owner, lease_expires_at, last_request_at)
                SELECT account_id, kind, lease_owner, lease_expires_at, last_request_at
                FROM jsonb_to_recordset(\(try PendingWrites.json(batch.claims))::jsonb)
                     AS x(account_id text, kind text, lease_owner text, lease_expires_at text, last_request_at text)
                ON CONFLICT (account_id, kind) DO UPDATE SET
                    lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, last_request_at = excluded.last_request_at
                """)
        }
        if !batch.credentials.isEmpty {
            let rows = try PendingWrites.json(batch.credentials)
            statements.append("""
                DELETE FROM \(unescaped: s).credentials c USING jsonb_to_recordset(\(rows)::jsonb) AS x(account_id text, kind text)
                WHERE c.account_id = x.account_id AND c.kind = x.kind AND c.slot = 'previous'
                """)
            statements.append("""
                UPDATE \(unescaped: s).credentials c SET slot = 'previous' FROM jsonb_to_recordset(\(rows)::jsonb) AS x(account_id text, kind text)
                WHERE c.account_id = x.account_id AND c.kind = x.kind AND c.slot = 'current'
                """)
            statements.append("""
                INSERT INTO \(unescaped: s).credentials(account_id, kind, slot, id, value, issued_at, expires_at)
                SELECT account_id, kind, 'current', id, decode(value, 'base64'), issued_at, expires_at
                FROM jsonb_to_recordset(\(rows)::jsonb) AS x(account_id text, kind text, id text, value text, issued_at text, expires_at text)
                """)
        }
        if !batch.clears.isEmpty {
            let rows = try PendingWrites.json(batch.clears)
            statements.append("""
                INSERT INTO \(unescaped: s).issuance(account_id, kind)
                SELECT account_id, kind FROM jsonb_to_recordset(\(rows)::jsonb) AS x(account_id text, kind text) ON CONFLICT DO NOTHING
                """)
            // As in SQLite, every column in the SET list reads its old value.
            statements.append("""
                UPDATE \(unescaped: s).issuance i SET last_error = NULL,
                    lease_owner = CASE WHEN i.lease_owner = x.owner THEN NULL ELSE i.lease_owner END,
                    lease_expires_at = CASE WHEN i.lease_owner = x.owner THEN NULL ELSE i.lease_expires_at END
                FROM jsonb_to_recordset(\(rows)::jsonb) AS x(account_id text, kind text, owner text)
                WHERE i.account_id = x.account_id AND i.kind = x.kind
                """)
        }
        if !batch.audits.isEmpty {
            statements.append("""
                INSERT INTO \(unescaped: s).audit(seq, at, actor, keyslot, action, account, outcome, detail, mac)
                SELECT seq, at, actor, keyslot, action, account, outcome, detail, decode(mac, 'base64')
                FROM jsonb_to_recordset(\(try PendingWrites.json(batch.audits))::jsonb) AS x(seq bigint, at text, actor text, keyslot text,
                     action text, account text, outcome text, detail text, mac text)
                """)
        }
        if let head = batch.auditHead { statements.append(try auditHeadStatement(head)) }
        return statements
    }

    var s: String { schema }

    // MARK: Identity and audit head

    func identity() throws -> VaultIdentity? {
        let rows = try run("SELECT key, blob, txt FROM \(unescaped: s).meta WHERE key IN ('vault_id', 'created_at', 'key_check')")
        guard !rows.isEmpty else { return nil }
        var blobs: [String: Data] = [:], texts: [String: String] = [:]
        for row in rows {
            let (key, blob, text) = try row.decode((String, Data?, String?).self)
            blobs[key] = blob
            texts[key] = text
        }
        return VaultIdentity(vaultID: blobs["vault_id"] ?? Data(), createdAt: texts["created_at"] ?? "", keyCheck: blobs["key_check"] ?? Data())
    }

    func insertIdentity(_ identity: VaultIdentity) throws {
        try run("INSERT INTO \(unescaped: s).meta(key, blob) VALUES ('vault_id', \(identity.vaultID)), ('key_check', \(identity.keyCheck))")
        try run("INSERT INTO \(unescaped: s).meta(key, txt) VALUES ('created_at', \(identity.createdAt))")
    }

    func auditHead() throws -> AuditHead? {
        // Held-back writes never change the head (a new head is held until they are sent),
        // so they stay held.
        let query: PostgresQuery = "SELECT (SELECT num FROM \(unescaped: s).meta WHERE key = 'audit_head_seq'), (SELECT blob FROM \(unescaped: s).meta WHERE key = 'audit_head_mac')"
        let headIsHeld = pending?.auditHeadIsHeld ?? true
        let rows = try headIsHeld ? run(query) : execute(query)
        guard let row = rows.first else { return nil }
        let (seq, mac) = try row.decode((Int64?, Data?).self)
        guard let seq else { return nil }
        return AuditHead(seq: seq, mac: mac ?? Data())
    }

    func metaText(_ key: String) throws -> String? {
        try run("SELECT txt FROM \(unescaped: s).meta WHERE key = \(key)").first?.decode(String?.self) ?? nil
    }

    func setMetaText(_ key: String, _ value: String) throws {
        try run("""
            INSERT INTO \(unescaped: s).meta(key, txt) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET txt = excluded.txt, blob = NULL, num = NULL
            """)
    }

    func setAuditHead(_ head: AuditHead) throws {
        if let pending {
            pending.set(auditHead: head)
        } else {
            try run(try auditHeadStatement(head))
        }
    }

    func auditHeadStatement(_ head: AuditHead) throws -> PostgresQuery {
        try """
        INSERT INTO \(unescaped: s).meta(key, num, blob) VALUES ('audit_head_seq', \(head.seq), NULL::bytea), ('audit_head_mac', NULL::bigint, \(head.mac))
        ON CONFLICT (key) DO UPDATE SET num = excluded.num, blob = excluded.blob
        """
    }

    // MARK: Keyslots

    func keyslots() throws -> [KeyslotRecord] {
        try run("SELECT label, kdf, opslimit, memlimit, salt, wrapped_key, created_at FROM \(unescaped: s).keyslots ORDER BY id").map { row in
            let (label, kdf, ops, mem, salt, wrapped, created) = try row.decode((String, String, Int64, Int64, Data, Data, String).self)
            return KeyslotRecord(label: label, kdf: KDFParameters(algorithm: kdf, opslimit: UInt64(ops), memlimit: Int(mem)),
                                 salt: [UInt8](salt), wrappedKey: wrapped, createdAt: created)
        }
    }

    func insertKeyslot(_ slot: KeyslotRecord) throws {
        try run("""
            INSERT INTO \(unescaped: s).keyslots(label, kdf, opslimit, memlimit, salt, wrapped_key, created_at)
            VALUES (\(slot.label), \(slot.kdf.algorithm), \(Int64(slot.kdf.opslimit)), \(Int64(slot.kdf.memlimit)), \(Data(slot.salt)), \(slot.wrappedKey), \(slot.createdAt))
            """)
    }

    func replaceKeyslot(_ slot: KeyslotRecord) throws -> Bool {
        !(try run("""
            UPDATE \(unescaped: s).keyslots SET kdf = \(slot.kdf.algorithm), opslimit = \(Int64(slot.kdf.opslimit)), memlimit = \(Int64(slot.kdf.memlimit)),
                salt = \(Data(slot.salt)), wrapped_key = \(slot.wrappedKey), created_at = \(slot.createdAt) WHERE label = \(slot.label) RETURNING 1
            """)).isEmpty
    }

    func deleteKeyslot(label: String) throws -> Bool {
        !(try run("DELETE FROM \(unescaped: s).keyslots WHERE label = \(label) RETURNING 1")).isEmpty
    }

    // MARK: Accounts

    var summarySQL: String {
        """
        SELECT a.id, a.name, a.environment, a.created_at, a.updated_at, a.secrets_updated_at,
               ARRAY(SELECT t.tag FROM \(s).account_tags t WHERE t.account_id = a.id ORDER BY t.tag)
        FROM \(s).accounts a
        """
    }

    static func summary(_ row: PostgresRow) throws -> AccountSummary {
        let (id, name, environment, created, updated, secrets, tags) = try row.decode((String, String, String, String, String, String, [String]).self)
        return AccountSummary(id: id, name: name, environment: AccountEnvironment(rawValue: environment) ?? .mock, tags: tags,
                              createdAt: created, updatedAt: updated, secretsUpdatedAt: secrets)
    }

    /// Every account (optionally tagged `tag`) by name, in one statement answering one
    /// row of two arrays: an element per account (its columns joined by tabs), and an
    /// element per tag of those accounts ("account id, tab, tag"). A row per account cost
    /// the client more than the server's whole answer (PostgresNIO decodes every DataRow
    /// on its event loop, then every cell, and a 10,000-account listing was 30,000 rows);
    /// an array is read straight from its bytes (``tabbedArray(_:fields:of:)``), and one
    /// aggregate over joined columns costs the server less than one per column. The order
    /// by name is made here, as one sort (an aggregate's ORDER BY is a sort in the
    /// server); one statement is its own snapshot, so no transaction is needed.
    func accountSummaries(tag: String?) throws -> [AccountSummary] {
        let account = "array_agg(a.id || E'\\t' || a.name || E'\\t' || a.environment || E'\\t' || a.created_at || E'\\t' || a.updated_at || E'\\t' || a.secrets_updated_at)"
        let rows: [PostgresRow]
        if let tag {
            rows = try run("""
                SELECT (SELECT \(unescaped: account) FROM \(unescaped: s).accounts a
                        WHERE EXISTS (SELECT 1 FROM \(unescaped: s).account_tags t WHERE t.account_id = a.id AND t.tag = \(tag))),
                       (SELECT array_agg(t.account_id || E'\\t' || t.tag) FROM \(unescaped: s).account_tags t
                        WHERE EXISTS (SELECT 1 FROM \(unescaped: s).account_tags x WHERE x.account_id = t.account_id AND x.tag = \(tag)))
                """)
        } else {
            rows = try run("""
                SELECT (SELECT \(unescaped: account) FROM \(unescaped: s).accounts a),
                       (SELECT array_agg(account_id || E'\\t' || tag) FROM \(unescaped: s).account_tags)
                """)
        }
        guard rows.count == 1, let row = rows.first, case let cells = Array(row), cells.count == 2 else {
            throw UnexpectedColumn(detail: "the listing answered \(rows.count) rows")
        }
        let accounts = try Self.tabbedArray(cells[0], fields: 6, of: "an account")
        let tagged = try Self.tabbedArray(cells[1], fields: 2, of: "a tag")
        var tags: [String: [String]] = [:]
        for index in stride(from: 0, to: tagged.count, by: 2) {
            tags[tagged[index], default: []].append(tagged[index + 1])
        }
        // Byte order, as COLLATE "C" and SQLite sort them.
        let byBytes: (String, String) -> Bool = { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var summaries: [AccountSummary] = []
        summaries.reserveCapacity(accounts.count / 6)
        for index in stride(from: 0, to: accounts.count, by: 6) {
            let id = accounts[index]
            summaries.append(AccountSummary(id: id, name: accounts[index + 1], environment: AccountEnvironment(rawValue: accounts[index + 2]) ?? .mock,
                                            tags: (tags[id] ?? []).sorted(by: byBytes),
                                            createdAt: accounts[index + 3], updatedAt: accounts[index + 4], secretsUpdatedAt: accounts[index + 5]))
        }
        summaries.sort { byBytes($0.name, $1.name) }
        return summaries
    }

    /// A `text[]` cell, each element split at its tabs into `fields` texts: the texts of
    /// all the elements, in order; none for NULL (an aggregate that saw no rows). The
    /// array is read from PostgreSQL's binary form: the number of dimensions, a flags
    /// word, the element type, each dimension's length and lower bound, then each element
    /// as its length and its bytes (a `text`'s UTF-8). Names, tags, ids and timestamps
    /// never hold a tab, so an element with another number of fields, a NULL element or
    /// any other shape is not what kisvault wrote (`what` names an element in the error).
    static func tabbedArray(_ cell: PostgresCell, fields: Int, of what: String) throws -> [String] {
        guard var bytes = cell.bytes else { return [] }
        let notText = UnexpectedColumn(name: cell.columnName, isNull: false)
        guard cell.dataType == .textArray,
              let dimensions = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil,
              bytes.readInteger(as: UInt32.self) == PostgresDataType.text.rawValue
        else { throw notText }
        if dimensions == 0 { return [] }
        guard dimensions == 1, let count = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil,
              count >= 0, Int(count) <= bytes.readableBytes / 4
        else { throw notText }
        var texts: [String] = []
        texts.reserveCapacity(Int(count) * fields)
        for _ in 0..<count {
            guard let length = bytes.readInteger(as: Int32.self) else { throw notText }
            guard length >= 0 else { throw UnexpectedColumn(name: cell.columnName, isNull: true) }
            guard let element = bytes.readSlice(length: Int(length)) else { throw notText }
            let found = element.withUnsafeReadableBytes { raw in
                var found = 0
                var start = 0
                for (index, byte) in raw.enumerated() where byte == UInt8(ascii: "\t") {
                    texts.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<index]), as: UTF8.self))
                    start = index + 1
                    found += 1
                }
                texts.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start...]), as: UTF8.self))
                return found + 1
            }
            guard found == fields else {
                throw UnexpectedColumn(detail: "\(what) was read as \(found) fields, not \(fields): a name or tag holds a tab")
            }
        }
        guard bytes.readableBytes == 0 else { throw notText }
        return texts
    }

    /// The columns of a row of `text` columns, nil for NULL, read straight from their
    /// bytes (PostgreSQL's binary form of `text` is its UTF-8). The driver's generic
    /// decoding costs microseconds a row: most of the client's time reading a bulk run's
    /// issuance state.
    static func optionalTexts(_ row: PostgresRow) throws -> [String?] {
        try row.map(optionalText)
    }

    /// One cell of ``optionalTexts(_:)``.
    private static func optionalText(_ cell: PostgresCell) throws -> String? {
        guard let bytes = cell.bytes else { return nil }
        guard cell.dataType == .text || cell.dataType == .varchar else { throw UnexpectedColumn(name: cell.columnName, isNull: false) }
        return String(buffer: bytes)
    }

    func accountSummary(named name: String) throws -> AccountSummary? {
        try run("\(unescaped: summarySQL) WHERE a.name = \(name)").first.map(Self.summary)
    }

    func accountNames(tag: String?) throws -> [String] {
        let rows: [PostgresRow]
        if let tag {
            rows = try run("SELECT a.name FROM \(unescaped: s).accounts a JOIN \(unescaped: s).account_tags t ON t.account_id = a.id AND t.tag = \(tag) ORDER BY a.name")
        } else {
            rows = try run("SELECT name FROM \(unescaped: s).accounts ORDER BY name")
        }
        return try rows.map { try $0.decode(String.self) }
    }

    var sealedSQL: String { "SELECT id, name, environment, appkey_fp, appkey, appsecret, account_no, hts_id FROM \(s).accounts" }

    static func sealed(_ row: PostgresRow) throws -> SealedAccount {
        let (id, name, environment, fp, appkey, appsecret, number, hts) = try row.decode((String, String, String, Data, Data, Data, Data?, Data?).self)
        return SealedAccount(id: id, name: name, environment: AccountEnvironment(rawValue: environment) ?? .mock, appkeyFingerprint: fp,
                             appkey: appkey, appsecret: appsecret, accountNumber: number, htsID: hts)
    }

    func sealedAccount(named name: String) throws -> SealedAccount? {
        try run("\(unescaped: sealedSQL) WHERE name = \(name)").first.map(Self.sealed)
    }

    func sealedAccounts() throws -> [SealedAccount] {
        try run("\(unescaped: sealedSQL) ORDER BY name").map(Self.sealed)
    }

    func accountName(withFingerprint fingerprint: Data, except id: String?) throws -> String? {
        try run("SELECT name FROM \(unescaped: s).accounts WHERE appkey_fp = \(fingerprint) AND id IS DISTINCT FROM \(id)").first?.decode(String.self)
    }

    func accountExists(id: String) throws -> Bool {
        !(try run("SELECT 1 FROM \(unescaped: s).accounts WHERE id = \(id)")).isEmpty
    }

    func insertAccount(_ account: SealedAccount, tags: [String], times: AccountTimes) throws {
        if let pending {
            pending.add(account: account, tags: tags, times: times)
            return
        }
        try run("""
            INSERT INTO \(unescaped: s).accounts(id, name, environment, appkey_fp, appkey, appsecret, account_no, hts_id, created_at, updated_at, secrets_updated_at)
            VALUES (\(account.id), \(account.name), \(account.environment.rawValue), \(account.appkeyFingerprint), \(account.appkey), \(account.appsecret),
                    \(account.accountNumber), \(account.htsID), \(times.createdAt), \(times.updatedAt), \(times.secretsUpdatedAt))
            """)
        for tag in tags { try addTag(tag, to: account.id) }
    }

    func updateAccount(id: String, _ change: AccountRecordChange) throws {
        switch change {
        case .environment(let environment):
            try run("UPDATE \(unescaped: s).accounts SET environment = \(environment.rawValue) WHERE id = \(id)")
        case .accountNumber(let blob):
            try run("UPDATE \(unescaped: s).accounts SET account_no = \(blob) WHERE id = \(id)")
        case .htsID(let blob):
            try run("UPDATE \(unescaped: s).accounts SET hts_id = \(blob) WHERE id = \(id)")
        case .appCredentials(let fingerprint, let appkey, let appsecret, let at):
            try run("""
                UPDATE \(unescaped: s).accounts SET appkey_fp = \(fingerprint), appkey = \(appkey), appsecret = \(appsecret),
                    secrets_updated_at = coalesce(\(at), secrets_updated_at) WHERE id = \(id)
                """)
        case .name(let name):
            try run("UPDATE \(unescaped: s).accounts SET name = \(name) WHERE id = \(id)")
        case .touched(let at):
            try run("UPDATE \(unescaped: s).accounts SET updated_at = \(at) WHERE id = \(id)")
        }
    }

    func addTag(_ tag: String, to id: String) throws {
        try run("INSERT INTO \(unescaped: s).account_tags(account_id, tag) VALUES (\(id), \(tag)) ON CONFLICT DO NOTHING")
    }

    func removeTag(_ tag: String, from id: String) throws {
        try run("DELETE FROM \(unescaped: s).account_tags WHERE account_id = \(id) AND tag = \(tag)")
    }

    func replaceTags(of id: String, with tags: [String]) throws {
        try run("DELETE FROM \(unescaped: s).account_tags WHERE account_id = \(id)")
        for tag in tags { try addTag(tag, to: id) }
    }

    func tagCount(of id: String) throws -> Int {
        Int(try run("SELECT count(*) FROM \(unescaped: s).account_tags WHERE account_id = \(id)").first?.decode(Int64.self) ?? 0)
    }

    func deleteAccount(named name: String) throws -> Bool {
        // Tags, credentials and issuance state go with it (ON DELETE CASCADE).
        !(try run("DELETE FROM \(unescaped: s).accounts WHERE name = \(name) RETURNING 1")).isEmpty
    }

    // MARK: Credentials

    var credentialSQL: String {
        "SELECT c.account_id, a.name, c.kind, c.slot, c.id, c.value, c.issued_at, c.expires_at FROM \(s).credentials c JOIN \(s).accounts a ON a.id = c.account_id"
    }

    static func credential(_ row: PostgresRow) throws -> StoredCredential {
        let (accountID, name, kind, slot, id, value, issued, expires) = try row.decode((String, String, String, String, String, Data, String, String).self)
        return StoredCredential(accountID: accountID, account: name, kind: CredentialKind(rawValue: kind) ?? .approval,
                                slot: CredentialSlot(rawValue: slot) ?? .current, id: id, value: value, issuedAt: issued, expiresAt: expires)
    }

    func credential(account name: String, kind: CredentialKind, slot: CredentialSlot) throws -> StoredCredential? {
        try run("\(unescaped: credentialSQL) WHERE a.name = \(name) AND c.kind = \(kind.rawValue) AND c.slot = \(slot.rawValue)").first.map(Self.credential)
    }

    func credential(accountID: String, kind: CredentialKind, slot: CredentialSlot) throws -> StoredCredential? {
        try run("\(unescaped: credentialSQL) WHERE c.account_id = \(accountID) AND c.kind = \(kind.rawValue) AND c.slot = \(slot.rawValue)").first.map(Self.credential)
    }

    func allCredentials() throws -> [StoredCredential] {
        try run("\(unescaped: credentialSQL) ORDER BY a.name, c.kind, c.slot").map(Self.credential)
    }

    func storeCurrent(_ credential: StoredCredential) throws {
        if let pending, try pending.add(credential: credential, flushing: flush) { return }
        let (account, kind) = (credential.accountID, credential.kind.rawValue)
        try run("DELETE FROM \(unescaped: s).credentials WHERE account_id = \(account) AND kind = \(kind) AND slot = 'previous'")
        try run("UPDATE \(unescaped: s).credentials SET slot = 'previous' WHERE account_id = \(account) AND kind = \(kind) AND slot = 'current'")
        try run("""
            INSERT INTO \(unescaped: s).credentials(account_id, kind, slot, id, value, issued_at, expires_at)
            VALUES (\(account), \(kind), 'current', \(credential.id), \(credential.value), \(credential.issuedAt), \(credential.expiresAt))
            """)
    }

    func deleteCredential(accountID: String, kind: CredentialKind, slot: CredentialSlot) throws {
        try run("DELETE FROM \(unescaped: s).credentials WHERE account_id = \(accountID) AND kind = \(kind.rawValue) AND slot = \(slot.rawValue)")
    }

    func replaceCredentialValue(accountID: String, kind: CredentialKind, slot: CredentialSlot, value: Data) throws {
        try run("UPDATE \(unescaped: s).credentials SET value = \(value) WHERE account_id = \(accountID) AND kind = \(kind.rawValue) AND slot = \(slot.rawValue)")
    }

    func forgetIssued(accountID: String) throws {
        try run("DELETE FROM \(unescaped: s).credentials WHERE account_id = \(accountID)")
        try run("DELETE FROM \(unescaped: s).issuance WHERE account_id = \(accountID)")
    }

    // MARK: Issuance state

    func snapshotSQL(_ kind: CredentialKind) -> String {
        // The kind is one of two fixed words, never user text: written into the statement.
        // Each joined row is looked up by its primary key (LATERAL): tables filled moments
        // ago have no statistics, and the planner then scans them whole once per account.
        let k = kind.rawValue
        return """
            SELECT a.id, a.name, a.environment, c.issued_at, c.expires_at, p.issued_at, p.expires_at,
                   i.lease_owner, i.lease_expires_at, i.last_request_at, i.rejected_code, i.rejected_message, i.last_error
            FROM \(s).accounts a
            LEFT JOIN LATERAL (SELECT issued_at, expires_at FROM \(s).credentials WHERE account_id = a.id AND kind = '\(k)' AND slot = 'current') c ON true
            LEFT JOIN LATERAL (SELECT issued_at, expires_at FROM \(s).credentials WHERE account_id = a.id AND kind = '\(k)' AND slot = 'previous') p ON true
            LEFT JOIN LATERAL (SELECT * FROM \(s).issuance WHERE account_id = a.id AND kind = '\(k)') i ON true
            """
    }

    static func snapshot(_ row: PostgresRow, kind: CredentialKind) throws -> IssuanceSnapshot {
        let c = try optionalTexts(row)
        guard c.count == 13, let id = c[0], let name = c[1], let environment = c[2] else {
            throw UnexpectedColumn(name: "id, name or environment", isNull: true)
        }
        let (ci, ce, pi, pe, owner, leaseUntil, lastRequest, code, message, error) = (c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12])
        func times(_ issued: String?, _ expires: String?) -> CredentialTimes? {
            guard let i = issued.flatMap(Timestamp.parse), let e = expires.flatMap(Timestamp.parse) else { return nil }
            return CredentialTimes(issuedAt: i, expiresAt: e)
        }
        return IssuanceSnapshot(
            accountID: id, account: name, environment: AccountEnvironment(rawValue: environment) ?? .mock, kind: kind,
            current: times(ci, ce), previous: times(pi, pe), leaseOwner: owner, leaseExpiresAt: leaseUntil.flatMap(Timestamp.parse),
            lastRequestAt: lastRequest.flatMap(Timestamp.parse), rejectedCode: code, rejectedMessage: message, lastError: error)
    }

    func issuanceSnapshot(account name: String, kind: CredentialKind) throws -> IssuanceSnapshot? {
        try run("\(unescaped: snapshotSQL(kind)) WHERE a.name = \(name)").first.map { try Self.snapshot($0, kind: kind) }
    }

    func issuanceSnapshots(accounts names: [String], kind: CredentialKind) throws -> [IssuanceSnapshot] {
        try run("\(unescaped: snapshotSQL(kind)) WHERE a.name = ANY(\(names))").map { try Self.snapshot($0, kind: kind) }
    }

    func existingAccountIDs(_ ids: [String]) throws -> Set<String> {
        Set(try run("SELECT id FROM \(unescaped: s).accounts WHERE id = ANY(\(ids))").map { try $0.decode(String.self) })
    }

    func issuanceSnapshots(kind: CredentialKind, tag: String?) throws -> [IssuanceSnapshot] {
        let rows: [PostgresRow]
        if let tag {
            rows = try run("\(unescaped: snapshotSQL(kind)) WHERE EXISTS (SELECT 1 FROM \(unescaped: s).account_tags t WHERE t.account_id = a.id AND t.tag = \(tag)) ORDER BY a.name")
        } else {
            rows = try run("\(unescaped: snapshotSQL(kind)) ORDER BY a.name")
        }
        return try rows.map { try Self.snapshot($0, kind: kind) }
    }

    func issuanceRecords() throws -> [IssuanceRecord] {
        try run("""
            SELECT account_id, kind, lease_owner, lease_expires_at, last_request_at, rejected_code, rejected_message, last_error
            FROM \(unescaped: s).issuance ORDER BY account_id, kind
            """).map { row in
            let (id, kind, owner, until, last, code, message, error) = try row.decode((String, String, String?, String?, String?, String?, String?, String?).self)
            return IssuanceRecord(accountID: id, kind: CredentialKind(rawValue: kind) ?? .approval, leaseOwner: owner, leaseExpiresAt: until,
                                  lastRequestAt: last, rejectedCode: code, rejectedMessage: message, lastError: error)
        }
    }

    func insertIssuance(_ r: IssuanceRecord) throws {
        try run("""
            INSERT INTO \(unescaped: s).issuance(account_id, kind, lease_owner, lease_expires_at, last_request_at, rejected_code, rejected_message, last_error)
            VALUES (\(r.accountID), \(r.kind.rawValue), \(r.leaseOwner), \(r.leaseExpiresAt), \(r.lastRequestAt), \(r.rejectedCode), \(r.rejectedMessage), \(r.lastError))
            """)
    }

    func sealedAppCredentials(accountID: String) throws -> (appkey: Data, appsecret: Data)? {
        try sealedAppCredentials(accountIDs: [accountID])[accountID]
    }

    func sealedAppCredentials(accountIDs ids: [String]) throws -> [String: (appkey: Data, appsecret: Data)] {
        let query: PostgresQuery = "SELECT id, appkey, appsecret FROM \(unescaped: s).accounts WHERE id = ANY(\(ids))"
        // Held-back writes change no appkey unless they add accounts, so claims already
        // held stay held and go out together.
        let holdsAccounts = pending?.holdsAccounts ?? true
        let rows = try holdsAccounts ? run(query) : execute(query)
        var found: [String: (appkey: Data, appsecret: Data)] = [:]
        for row in rows {
            let (id, appkey, appsecret) = try row.decode((String, Data, Data).self)
            found[id] = (appkey, appsecret)
        }
        return found
    }

    func leaseHolderAlive(_ owner: String) throws -> Bool? {
        guard let presence else { return nil }
        let (classID, objectID) = presence.key(owner)
        return try run("""
            SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
                           AND classid::bigint = \(classID) AND objid::bigint = \(objectID))
            """).first?.decode(Bool.self)
    }

    func claimLease(accountID: String, kind: CredentialKind, owner: String, until: String, requestAt: String) throws {
        // Present before the lease is visible: whoever sees the lease sees its holder.
        try presence?.announce(owner)
        if let pending, try pending.add(claim: .init(accountId: accountID, kind: kind.rawValue, leaseOwner: owner, leaseExpiresAt: until, lastRequestAt: requestAt),
                                        flushing: flush) { return }
        try run("""
            INSERT INTO \(unescaped: s).issuance(account_id, kind, lease_owner, lease_expires_at, last_request_at)
            VALUES (\(accountID), \(kind.rawValue), \(owner), \(until), \(requestAt))
            ON CONFLICT (account_id, kind) DO UPDATE SET
                lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, last_request_at = excluded.last_request_at
            """)
    }

    func renewLease(accountID: String, kind: CredentialKind, owner: String, until: String, requestAt: String) throws -> Bool {
        try !run("""
            UPDATE \(unescaped: s).issuance SET lease_expires_at = \(until), last_request_at = \(requestAt)
            WHERE account_id = \(accountID) AND kind = \(kind.rawValue) AND lease_owner = \(owner)
            RETURNING 1
            """).isEmpty
    }

    func releaseLease(accountID: String, kind: CredentialKind, owner: String) throws {
        try run("""
            UPDATE \(unescaped: s).issuance SET lease_owner = NULL, lease_expires_at = NULL
            WHERE account_id = \(accountID) AND kind = \(kind.rawValue) AND lease_owner = \(owner)
            """)
    }

    func clearError(accountID: String, kind: CredentialKind, releasingLeaseOf owner: String) throws {
        if let pending, try pending.add(clear: .init(accountId: accountID, kind: kind.rawValue, owner: owner), flushing: flush) { return }
        // As in SQLite, every column in the SET list reads its old value.
        try run("""
            INSERT INTO \(unescaped: s).issuance AS i (account_id, kind) VALUES (\(accountID), \(kind.rawValue))
            ON CONFLICT (account_id, kind) DO UPDATE SET last_error = NULL,
                lease_owner = CASE WHEN i.lease_owner = \(owner) THEN NULL ELSE i.lease_owner END,
                lease_expires_at = CASE WHEN i.lease_owner = \(owner) THEN NULL ELSE i.lease_expires_at END
            """)
    }

    func markRejected(accountID: String, kind: CredentialKind, code: String, message: String) throws {
        try run("""
            INSERT INTO \(unescaped: s).issuance(account_id, kind, rejected_code, rejected_message, last_error)
            VALUES (\(accountID), \(kind.rawValue), \(code), \(message), \(message))
            ON CONFLICT (account_id, kind) DO UPDATE SET
                rejected_code = excluded.rejected_code, rejected_message = excluded.rejected_message, last_error = excluded.last_error
            """)
    }

    func recordError(accountID: String, kind: CredentialKind, message: String) throws {
        try run("""
            INSERT INTO \(unescaped: s).issuance(account_id, kind, last_error) VALUES (\(accountID), \(kind.rawValue), \(message))
            ON CONFLICT (account_id, kind) DO UPDATE SET last_error = excluded.last_error
            """)
    }

    // MARK: Audit log

    var auditColumns: String { "seq, at, actor, keyslot, action, account, outcome, detail" }

    static func auditRecord(_ row: PostgresRow) throws -> (AuditRecord, Data) {
        let (seq, at, actor, keyslot, action, account, outcome, detail, mac) =
            try row.decode((Int64, String, String, String?, String, String?, String, String, Data).self)
        return (AuditRecord(seq: seq, at: at, actor: actor, keyslot: keyslot, action: action, account: account, outcome: outcome, detail: detail), mac)
    }

    func appendAudit(_ record: AuditRecord, mac: Data) throws {
        if let pending {
            pending.add(audit: record, mac: mac)
            return
        }
        try run("""
            INSERT INTO \(unescaped: s).audit(seq, at, actor, keyslot, action, account, outcome, detail, mac)
            VALUES (\(record.seq), \(record.at), \(record.actor), \(record.keyslot), \(record.action), \(record.account), \(record.outcome), \(record.detail), \(mac))
            """)
    }

    func auditRecords(account: String?, since: String?) throws -> [AuditRecord] {
        try run("""
            SELECT \(unescaped: auditColumns), mac FROM \(unescaped: s).audit
            WHERE (\(account)::text IS NULL OR account = \(account)) AND (\(since)::text IS NULL OR at >= \(since)) ORDER BY seq
            """).map { try Self.auditRecord($0).0 }
    }

    func forEachAuditRow(_ body: (AuditRecord, Data) throws -> Void) throws {
        // In pages, so a long log is never held whole.
        var after: Int64 = 0
        while true {
            let rows = try run("SELECT \(unescaped: auditColumns), mac FROM \(unescaped: s).audit WHERE seq > \(after) ORDER BY seq LIMIT 5000")
            for row in rows {
                let (record, mac) = try Self.auditRecord(row)
                try body(record, mac)
                after = record.seq
            }
            if rows.count < 5000 { return }
        }
    }

    func auditRowCount() throws -> Int {
        Int(try run("SELECT count(*) FROM \(unescaped: s).audit").first?.decode(Int64.self) ?? 0)
    }

    func auditRow(seq: Int64) throws -> (AuditRecord, Data)? {
        try run("SELECT \(unescaped: auditColumns), mac FROM \(unescaped: s).audit WHERE seq = \(seq)").first.map(Self.auditRecord)
    }

    func lastAuditRow() throws -> (AuditRecord, Data)? {
        try run("SELECT \(unescaped: auditColumns), mac FROM \(unescaped: s).audit ORDER BY seq DESC LIMIT 1").first.map(Self.auditRecord)
    }
}

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

/// A value read back that is not what kisvault wrote: a column NULL or not text where
/// text was read, or a listing's aggregate of another shape (``PostgresRecords/tabbedArray(_:fields:of:)``).
struct UnexpectedColumn: Error {
    /// What was found, as a message says it ("column name is NULL").
    let detail: String

    init(name: String, isNull: Bool) {
        detail = "column \(name) is \(isNull ? "NULL" : "not text")"
    }

    init(detail: String) {
        self.detail = detail
    }
}
