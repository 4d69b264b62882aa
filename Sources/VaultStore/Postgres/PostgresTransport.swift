import Foundation
import Logging
import NIOCore
import PostgresNIO
import VaultCrypto

/// How the team vault's statements travel: one at a time or held back and sent in
/// batches, each bounded in time, over the transaction's connection.
extension PostgresRecords {
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
    func execute(_ query: PostgresQuery) throws -> [PostgresRow] {
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
}
