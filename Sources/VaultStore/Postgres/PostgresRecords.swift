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
