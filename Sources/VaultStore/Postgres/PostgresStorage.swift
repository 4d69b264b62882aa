import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// A team vault: the records of docs/FORMAT.md in a schema of a PostgreSQL database, shared
/// by every machine of a team. The server holds only what a vault file holds (sealed
/// blobs, names, timestamps); keys never leave the client.
///
/// Every write transaction first takes a transaction-level advisory lock of the vault
/// (`pg_advisory_xact_lock`), so writers are serialised across machines as SQLite
/// serialises them in one file: an issuance decided in one transaction sees every earlier
/// commit, and the audit chain never forks. Reads are REPEATABLE READ snapshots.
/// Connections are pooled per process.
public final class PostgresStorage: VaultStorage, @unchecked Sendable {
    public let location: String
    /// Set once, by ``open(url:mode:busyTimeout:)`` before the storage is handed out.
    public private(set) var formatVersion: Int
    let place: PostgresLocation
    let configuration: PostgresConnection.Configuration
    let mode: SQLiteStorage.AccessMode
    let busyTimeout: Double
    let logger: Logger
    /// The advisory lock key of this vault: one 64-bit number per database and schema.
    let lockKey: Int64

    /// The session-level advisory locks that say this process is alive.
    let presence: PostgresPresence
    /// The server's clock as seen from here.
    let clock = ServerClock()
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []
    private var closed = false
    private var nextID = 1

    /// The frozen migrations of the PostgreSQL layout, one list of statements per format
    /// version, as for SQLite. `{s}` is the schema.
    static let migrations: [[String]] = [
        [
            "CREATE TABLE {s}.format (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), application text NOT NULL, version integer NOT NULL)",
            """
            CREATE TABLE {s}.meta (key text PRIMARY KEY, blob bytea, txt text, num bigint,
                CHECK ((blob IS NOT NULL)::int + (txt IS NOT NULL)::int + (num IS NOT NULL)::int = 1))
            """,
            """
            CREATE TABLE {s}.keyslots (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, label text COLLATE "C" NOT NULL UNIQUE,
                kdf text NOT NULL, opslimit bigint NOT NULL, memlimit bigint NOT NULL,
                salt bytea NOT NULL CHECK (length(salt) = 16), wrapped_key bytea NOT NULL CHECK (length(wrapped_key) = 72),
                created_at text NOT NULL)
            """,
            """
            CREATE TABLE {s}.accounts (id text COLLATE "C" PRIMARY KEY CHECK (length(id) = 32), name text COLLATE "C" NOT NULL UNIQUE,
                environment text NOT NULL CHECK (environment IN ('real', 'mock')),
                appkey_fp bytea NOT NULL UNIQUE CHECK (length(appkey_fp) = 32), appkey bytea NOT NULL, appsecret bytea NOT NULL,
                account_no bytea, hts_id bytea, created_at text NOT NULL, updated_at text NOT NULL, secrets_updated_at text NOT NULL)
            """,
            """
            CREATE TABLE {s}.account_tags (account_id text COLLATE "C" NOT NULL REFERENCES {s}.accounts(id) ON DELETE CASCADE,
                tag text COLLATE "C" NOT NULL, PRIMARY KEY (account_id, tag))
            """,
            "CREATE INDEX account_tags_by_tag ON {s}.account_tags(tag)",
            """
            CREATE TABLE {s}.audit (seq bigint PRIMARY KEY, at text NOT NULL, actor text NOT NULL, keyslot text, action text NOT NULL,
                account text, outcome text NOT NULL, detail text NOT NULL, mac bytea NOT NULL CHECK (length(mac) = 32))
            """,
            "CREATE INDEX audit_by_account ON {s}.audit(account)",
        ],
        [
            """
            CREATE TABLE {s}.credentials (account_id text COLLATE "C" NOT NULL REFERENCES {s}.accounts(id) ON DELETE CASCADE,
                kind text NOT NULL CHECK (kind IN ('approval', 'token')), slot text NOT NULL CHECK (slot IN ('current', 'previous')),
                id text NOT NULL CHECK (length(id) = 32), value bytea NOT NULL, issued_at text NOT NULL, expires_at text NOT NULL,
                PRIMARY KEY (account_id, kind, slot))
            """,
            """
            CREATE TABLE {s}.issuance (account_id text COLLATE "C" NOT NULL REFERENCES {s}.accounts(id) ON DELETE CASCADE,
                kind text NOT NULL CHECK (kind IN ('approval', 'token')), lease_owner text, lease_expires_at text,
                last_request_at text, rejected_code text, rejected_message text, last_error text, PRIMARY KEY (account_id, kind))
            """,
        ],
        // 3: field keys bind the account's name and environment (docs/FORMAT.md, "Keys");
        // an older vault's fields are re-sealed at its first unlocked write.
        ["INSERT INTO {s}.meta(key, txt) VALUES ('field_binding', 'pending')"],
    ]

    /// What `format.application` holds: a schema kisvault made.
    static let application = "kisvault"

    private init(place: PostgresLocation, configuration: PostgresConnection.Configuration, formatVersion: Int,
                 mode: SQLiteStorage.AccessMode, busyTimeout: Double) {
        self.place = place
        location = place.text
        // How long a write waits for the vault's lock, set once per session in the startup
        // message rather than by a statement in every transaction.
        var configuration = configuration
        configuration.options.additionalStartupParameters.append(("lock_timeout", "\(Int(busyTimeout * 1000))"))
        // Every statement is small and indexed; compiling one (JIT, on where a table's
        // statistics are stale) costs more than it saves.
        configuration.options.additionalStartupParameters.append(("jit", "off"))
        self.configuration = configuration
        self.formatVersion = formatVersion
        self.mode = mode
        self.busyTimeout = busyTimeout
        var logger = Logger(label: "kisvault.postgres")
        logger.logLevel = .critical
        self.logger = logger
        // FNV-1a of "kisvault:" + database + "." + schema: stable, and distinct per vault.
        let hash = StableHash.fnv1a("kisvault:\(place.database).\(place.schema)")
        lockKey = Int64(bitPattern: hash)
        presence = PostgresPresence(vaultKey: UInt32(truncatingIfNeeded: hash), configuration: configuration, logger: logger)
    }

    /// Opens the vault in the schema `url` names.
    /// - Throws: ``VaultError/invalidLocation(_:reason:)``, ``VaultError/unreachable(location:detail:)``,
    ///   ``VaultError/vaultNotFound(path:)`` (no such schema, or no vault in it),
    ///   ``VaultError/notAVault(path:reason:)``, ``VaultError/newerFormat(path:found:supported:)``.
    public static func open(url: String, mode: SQLiteStorage.AccessMode = .readWrite, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue) throws(VaultError) -> PostgresStorage {
        let place = try PostgresLocation(url)
        let storage = PostgresStorage(place: place, configuration: try connectionConfiguration(place), formatVersion: 0, mode: mode, busyTimeout: busyTimeout)
        let version = try storage.withConnection { connection -> Int? in
            try storage.formatVersion(connection)
        }
        guard let version else { throw .vaultNotFound(path: place.text) }
        guard version <= migrations.count else { throw .newerFormat(path: place.text, found: version, supported: migrations.count) }
        storage.formatVersion = version
        // One reading to start with (most processes live seconds); the refreshes of a
        // long-lived one take the best of three.
        try storage.measureClock(samples: 1)
        if version < migrations.count, mode == .readWrite {
            try storage.withConnection { connection in try storage.transaction(connection, write: true) { try storage.migrate($0, from: version) } }
            storage.formatVersion = migrations.count
        }
        return storage
    }

    /// Creates a vault in the schema `url` names (created when missing; an existing one
    /// must hold no tables), `populate` writing its first records in the same transaction.
    /// - Throws: ``VaultError/vaultExists(path:)`` for a schema that holds tables.
    public static func create(url: String, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue, populate: (any VaultRecords) throws -> Void) throws(VaultError) -> PostgresStorage {
        let place = try PostgresLocation(url)
        let storage = PostgresStorage(place: place, configuration: try connectionConfiguration(place), formatVersion: migrations.count,
                                      mode: .readWrite, busyTimeout: busyTimeout)
        try storage.withConnection { connection in
            try storage.transaction(connection, write: true) { records in
                try records.run("CREATE SCHEMA IF NOT EXISTS \(unescaped: place.schema)")
                let tables = try records.run("SELECT count(*) FROM pg_tables WHERE schemaname = \(place.schema)").first?.decode(Int64.self) ?? 0
                guard tables == 0 else { throw VaultError.vaultExists(path: place.text) }
                try storage.migrate(records, from: 0)
                try populate(records)
            }
        }
        return storage
    }

    /// The connection settings of `place`, with its password from its source.
    static func connectionConfiguration(_ place: PostgresLocation) throws(VaultError) -> PostgresConnection.Configuration {
        let password = try place.password()
        var configuration: PostgresConnection.Configuration
        if place.isUnixSocket {
            configuration = .init(unixSocketPath: place.host + "/.s.PGSQL.\(place.port)", username: place.user, password: password, database: place.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch place.tls {
            case .disable:
                tls = .disable
            case .require, .verifyFull:
                var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                if place.tls == .require {
                    // sslmode=require, as libpq: encrypted, the server's certificate unchecked.
                    tlsConfiguration.certificateVerification = .none
                } else if let root = place.rootCertificate {
                    guard FileManager.default.isReadableFile(atPath: root) else {
                        throw .invalidLocation(place.text, reason: "sslrootcert \(root) is not a file this user can read: give the CA certificate that signed the server's")
                    }
                    tlsConfiguration.trustRoots = .file(root)
                }
                do {
                    tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
                } catch {
                    throw .invalidLocation(place.text, reason: "cannot set up TLS (sslrootcert \(place.rootCertificate ?? "-")): \(error)")
                }
            }
            configuration = .init(host: place.host, port: place.port, username: place.user, password: password, database: place.database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    // MARK: VaultStorage

    public func read<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        try withConnection { connection in try transaction(connection, write: false, body) }
    }

    /// One statement in autocommit: its own snapshot, one round trip instead of three. A
    /// connection the server dropped is replaced and the read tried once more.
    public func readStatement<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        try withConnection { connection in
            let records = PostgresRecords(connection: connection, schema: place.schema, logger: logger, presence: presence, pending: nil)
            do {
                return try body(records)
            } catch {
                if case .unreachable = translate(error) { throw StaleConnection(underlying: error) }
                throw error
            }
        }
    }

    public func write<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        guard mode == .readWrite else { throw .readOnly(path: location) }
        return try withConnection { connection in try transaction(connection, write: true, body) }
    }

    /// Measured when the vault is opened and again every few minutes, on the next use:
    /// a failed measurement keeps the last one (the next statement reports the outage).
    public func clockOffset() -> TimeInterval {
        let (offset, stale) = clock.current
        guard stale else { return offset }
        try? measureClock(samples: 3)
        return clock.current.offset
    }

    /// `samples` round trips for the server's `clock_timestamp()`, timed by this machine.
    func measureClock(samples count: Int) throws(VaultError) {
        let samples = try withConnection { connection in
            try (0..<count).map { _ -> (server: Date, before: Date, after: Date) in
                let before = MachineClock.now()
                let seconds = try PostgresRecords.answer("SELECT extract(epoch FROM clock_timestamp())::float8", on: connection, logger: logger)
                    .first?.decode(Double.self) ?? 0
                return (Date(timeIntervalSince1970: seconds), before, MachineClock.now())
            }
        }
        clock.record(samples)
    }

    /// Opens the presence session and takes `owner`'s lock on it while the caller reads
    /// and decides (a connection and its authentication, some milliseconds).
    public func prepareToClaim(owner: String) {
        let presence = presence
        DispatchQueue.global().async { try? presence.announce(owner) }
    }

    public func close() {
        let connections = lock.withLock { () -> [PostgresConnection] in
            closed = true
            defer { idle = [] }
            return idle
        }
        // Each close is a round trip: all are begun, then waited for.
        let closing = connections.map { $0.close() } + [presence.close()].compactMap { $0 }
        for done in closing { try? done.wait() }
    }

    deinit {
        for connection in idle { Self.dispose(connection) }
    }

    /// Closes `connection` without waiting, keeping it alive until it is closed
    /// (PostgresNIO requires a connection to be closed before it is released).
    static func dispose(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    /// What the schema's `format` table says, nil when there is no vault in the schema.
    func formatVersion(_ connection: PostgresConnection) throws -> Int? {
        let records = PostgresRecords(connection: connection, schema: place.schema, logger: logger, presence: nil, pending: nil)
        // to_regclass rather than the pg_tables view: a millisecond less on the first
        // statement of a new session, whose catalog caches are cold.
        let found = try records.run("SELECT to_regclass(quote_ident(\(place.schema)) || '.format') IS NOT NULL").first?.decode(Bool.self) ?? false
        guard found else { return nil }
        guard let row = try records.run("SELECT application, version FROM \(unescaped: place.schema).format").first else {
            throw VaultError.damaged(path: location, detail: "the format row is missing: initialisation never finished")
        }
        let (application, version) = try row.decode((String, Int32).self)
        guard application == Self.application else {
            throw VaultError.notAVault(path: location, reason: "the schema holds a 'format' table that kisvault did not make")
        }
        return Int(version)
    }

    /// Applies the migrations after `version` in the caller's transaction.
    func migrate(_ records: PostgresRecords, from version: Int) throws {
        for (index, statements) in Self.migrations.enumerated() where index >= version {
            for statement in statements {
                try records.run(PostgresQuery(unsafeSQL: statement.replacingOccurrences(of: "{s}", with: place.schema)))
            }
        }
        try records.run("""
            INSERT INTO \(unescaped: place.schema).format(singleton, application, version) VALUES (true, \(Self.application), \(Int32(Self.migrations.count)))
            ON CONFLICT (singleton) DO UPDATE SET version = excluded.version
            """)
    }

    /// Runs `body` in one transaction on `connection`: a write takes the vault's advisory
    /// lock first (waiting at most the busy timeout), a read is a REPEATABLE READ snapshot.
    /// Writes the records hold back (``PendingWrites``) go out before COMMIT, which runs
    /// through ``PostgresRecords/run(_:)`` like every other statement.
    func transaction<T>(_ connection: PostgresConnection, write: Bool, _ body: (PostgresRecords) throws -> T) throws -> T {
        let records = PostgresRecords(connection: connection, schema: place.schema, logger: logger, presence: presence, pending: PendingWrites())
        do {
            // A write's BEGIN and lock go together, waited for once.
            try records.begin(write ? ["BEGIN ISOLATION LEVEL READ COMMITTED", "SELECT pg_advisory_xact_lock(\(lockKey))"]
                                    : ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"])
        } catch {
            // Nothing was done yet: a pooled connection the server dropped (a restart) is
            // safe to replace and try again. The lock not taken in time leaves a failed
            // transaction to roll back.
            if case .unreachable = translate(error) { throw StaleConnection(underlying: error) }
            _ = try? records.run("ROLLBACK")
            throw error
        }
        do {
            let result = try body(records)
            do {
                try records.commit()
            } catch {
                // Lost with COMMIT in flight: the server may have committed (and, with a
                // synchronous standby, kept it through a failover). Not "not stored".
                if case .unreachable(let location, let detail) = translate(error) { throw VaultError.commitUnknown(location: location, detail: detail) }
                throw error
            }
            if let pending = records.pending, pending.sentRows > 0 { refreshStatistics(after: pending.sentRows, on: records) }
            return result
        } catch {
            // A connection the server dropped has no transaction left to roll back (and a
            // statement sent on it may never be answered): it is discarded instead.
            switch translate(error) {
            case .unreachable, .commitUnknown: throw error
            default: break
            }
            _ = try? records.run("ROLLBACK")
            throw error
        }
    }

    /// Rows written since the tables' statistics were last refreshed, by this process.
    private var rowsSinceAnalyze = 0
    /// The accounts the last refresh counted.
    private var knownAccounts = 0

    /// Refreshes the planner's statistics once this process has written many rows since
    /// the last time (500, or twice the accounts then known), instead of waiting for
    /// autovacuum's next round (a minute): until then the planner takes tables filled
    /// moments ago for empty and scans them whole once per account looked up, and a bulk
    /// run's claims slow down as it goes. Errors are ignored (another role's tables are
    /// skipped with a warning; an outage shows on the next statement).
    private func refreshStatistics(after rows: Int, on records: PostgresRecords) {
        let due = lock.withLock { () -> Bool in
            rowsSinceAnalyze += rows
            guard rowsSinceAnalyze >= max(500, 2 * knownAccounts) else { return false }
            rowsSinceAnalyze = 0
            return true
        }
        guard due else { return }
        let s = place.schema
        _ = try? records.run(PostgresQuery(unsafeSQL: "ANALYZE \(s).accounts, \(s).account_tags, \(s).credentials, \(s).issuance"))
        if let count = try? records.run(PostgresQuery(unsafeSQL: "SELECT reltuples::bigint FROM pg_class WHERE oid = '\(s).accounts'::regclass")).first?.decode(Int64.self) {
            lock.withLock { knownAccounts = Int(max(0, count)) }
        }
    }
    /// Runs `body` with a pooled connection (opened on demand), translating every failure
    /// once into a ``VaultError``. A connection that failed is closed, not pooled again.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws(VaultError) -> T {
        var fresh = false
        while true {
            let connection: PostgresConnection
            do {
                (connection, fresh) = try takeConnection(fresh: fresh)
            } catch {
                throw translate(error)
            }
            do {
                let result = try body(connection)
                giveBack(connection)
                return result
            } catch let stale as StaleConnection {
                Self.dispose(connection)
                // Once, on a new connection: a server that is really gone fails again there.
                guard !fresh else { throw translate(stale.underlying) }
                fresh = true
                continue
            } catch {
                return try handle(error, on: connection)
            }
        }
    }

    /// A failure of a transaction: a connection the server dropped is closed, any other
    /// goes back to the pool (its transaction was rolled back).
    private func handle<T>(_ error: any Error, on connection: PostgresConnection) throws(VaultError) -> T {
        let translated = translate(error)
        if case .unreachable = translated {
            Self.dispose(connection)
        } else {
            giveBack(connection)
        }
        throw translated
    }

    /// A pooled connection, or (with `fresh`, or none pooled) a new one; says which.
    private func takeConnection(fresh: Bool) throws -> (PostgresConnection, Bool) {
        let (pooled, id) = try lock.withLock { () throws -> (PostgresConnection?, Int) in
            guard !closed else { throw VaultError.io(path: location, detail: "the vault was closed") }
            nextID += 1
            return (fresh ? nil : idle.popLast(), nextID)
        }
        if let pooled, !pooled.isClosed { return (pooled, false) }
        if let pooled { Self.dispose(pooled) }
        let made = try PostgresConnection.connect(on: PostgresConnection.defaultEventLoopGroup.any(), configuration: configuration,
                                                  id: id, logger: logger).wait()
        return (made, true)
    }

    private func giveBack(_ connection: PostgresConnection) {
        let keep = lock.withLock { () -> Bool in
            guard !closed, !connection.isClosed, idle.count < 16 else { return false }
            idle.append(connection)
            return true
        }
        if !keep { Self.dispose(connection) }
    }

    /// One line for a failed TLS handshake: what was refused and what to check, without
    /// BoringSSL's error numbers and source paths.
    func tlsFailure(_ error: any Error) -> VaultError {
        let text = "\(error)"
        let host = place.host
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return .unreachable(location: location, detail: "TLS: the server's certificate does not name \(host); connect by a name or address it was issued for")
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            let signer = place.rootCertificate.map { "the CA in sslrootcert (\($0))" }
                ?? "a CA this machine trusts (set sslrootcert= to the CA that signed it)"
            return .unreachable(location: location, detail: "TLS: the server's certificate was not accepted: it is not signed by \(signer), or does not name \(host)")
        }
        // BoringSSL's reason is the word after "OPENSSL_internal:"; the rest is its source.
        let reason = text.components(separatedBy: "OPENSSL_internal:").dropFirst().first?.prefix { $0.isLetter || $0 == "_" }
        return .unreachable(location: location, detail: "TLS handshake with \(host) failed (\(reason.map(String.init) ?? "\(type(of: error))")); check sslmode and the server's ssl settings")
    }

    /// Maps PostgreSQL and connection failures to the vault's typed errors, once, here.
    func translate(_ error: any Error) -> VaultError {
        if let error = error as? VaultError { return error }
        if let error = error as? PSQLError {
            if let state = error.serverInfo?[.sqlState] {
                let message = error.serverInfo?[.message] ?? ""
                switch state {
                case "28P01", "28000":
                    return .unreachable(location: location, detail: "PostgreSQL refused user '\(place.user)' (\(message)); check the password in PGPASSWORD, KISVAULT_PG_PASSWORD_FILE or ~/.pgpass, and pg_hba.conf")
                case "3D000":
                    return .unreachable(location: location, detail: "there is no database '\(place.database)' (\(message))")
                case "55P03", "40P01", "40001":
                    return .busy(path: location, timeoutSeconds: busyTimeout)
                case "42501":
                    // Not a read-only file: a role the server does not let use the schema.
                    return .io(path: location, detail: "PostgreSQL user '\(place.user)' may not use schema \(place.schema) (\(message)); have its owner grant the team's role to this user")
                case "3F000", "42P01":
                    return .vaultNotFound(path: location)
                case "53100", "53200":
                    return .io(path: location, detail: "the database server's disk is full (\(message)); nothing more can be stored until its administrator makes room")
                case "23505":
                    return .io(path: location, detail: "a record that must be unique exists already (\(message))")
                case "57P01", "57P02", "57P03", "08000", "08003", "08006":
                    return .unreachable(location: location, detail: "the PostgreSQL server went away (\(message)); try again when it is back")
                default:
                    return .io(path: location, detail: "PostgreSQL error \(state): \(message)")
                }
            }
            if let underlying = error.underlying, underlying is NIOSSLError || underlying is NIOSSLExtraError {
                return tlsFailure(underlying)
            }
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
                let underlying = error.underlying.map { "\($0)" } ?? "\(error.code)"
                let cause = underlying.contains("Connection refused") ? "connection refused" : underlying
                return .unreachable(location: location, detail: "cannot connect to PostgreSQL at \(place.isUnixSocket ? place.host : "\(place.host):\(place.port)") (\(cause)); is the server running, and the host and port right?")
            case .sslUnsupported:
                return .unreachable(location: location, detail: "the server does not offer TLS; use sslmode=disable only on loopback or a socket")
            case .failedToAddSSLHandler:
                return .unreachable(location: location, detail: "TLS could not be set up: \(error.underlying.map { "\($0)" } ?? "")")
            case .authMechanismRequiresPassword:
                return .unreachable(location: location, detail: "the server asks user '\(place.user)' for a password and none was given: set PGPASSWORD, KISVAULT_PG_PASSWORD_FILE or a ~/.pgpass line")
            default:
                return .io(path: location, detail: "PostgreSQL: \(error.code)")
            }
        }
        if error is NIOSSLError || error is NIOSSLExtraError {
            return tlsFailure(error)
        }
        if error is ChannelError || error is IOError {
            return .unreachable(location: location, detail: "cannot connect to PostgreSQL: \(error)")
        }
        if let error = error as? Unanswered {
            guard let seconds = error.seconds else {
                return .unreachable(location: location, detail: "the connection to the PostgreSQL server closed mid-statement; try again when it is back")
            }
            return .unreachable(location: location, detail: "the PostgreSQL server did not answer for \(seconds) s; is it overloaded, or the network cut?")
        }
        if let error = error as? PostgresDecodingError {
            return .damaged(path: location, detail: "a column is not of the type kisvault wrote (\(error.code))")
        }
        if let error = error as? UnexpectedColumn {
            return .damaged(path: location, detail: "\(error.detail), not what kisvault wrote")
        }
        // PostgresNIO's errors describe themselves as "Generic description to prevent
        // accidental leakage": the type says more.
        let text = "\(error)"
        return .io(path: location, detail: text.contains("Generic description") ? "PostgreSQL failed (\(type(of: error)))" : text)
    }
}

extension PostgresStorage {
    /// What applies to a database: the server, the connection's encryption, and who else
    /// may read or change the vault's schema (they can learn names and times, and delete
    /// or replace rows, though never open a sealed field).
    public func storageChecks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        do {
            let (server, ssl, others, owner) = try withConnection { connection in
                try transaction(connection, write: false) { records -> (String, Bool, [String], String) in
                    let server = try records.run("SELECT current_setting('server_version')").first?.decode(String.self) ?? "?"
                    let ssl = try records.run("SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)").first?.decode(Bool.self) ?? false
                    let owner = try records.run("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = \(place.schema)").first?.decode(String.self) ?? "?"
                    let others = try records.run("""
                        SELECT r.rolname FROM pg_roles r WHERE r.rolname <> current_user AND NOT r.rolsuper AND r.rolname NOT LIKE 'pg\\_%'
                          AND has_schema_privilege(r.oid, \(place.schema), 'USAGE') ORDER BY r.rolname
                        """).map { try $0.decode(String.self) }
                    return (server, ssl, others, owner)
                }
            }
            checks.append(DoctorCheck(check: "server", status: .ok, detail: "PostgreSQL \(server), schema \(place.schema) owned by \(owner)"))
            let local = place.isUnixSocket || PostgresLocation.isLoopbackName(place.host)
            checks.append(DoctorCheck(check: "connection", status: ssl || local ? .ok : .fail,
                                      detail: ssl ? "TLS (sslmode=\(place.tls.rawValue))" : local ? "unencrypted, on this machine" : "unencrypted across the network: use sslmode=verify-full"))
            checks.append(DoctorCheck(check: "privileges", status: others.isEmpty ? .ok : .warn,
                                      detail: others.isEmpty ? "no other role may use the schema" : "other roles may use the schema (\(others.prefix(10).joined(separator: ", "))): they see names and times and can delete rows, never a secret; grant only the team's role"))
        } catch {
            checks.append(DoctorCheck(check: "server", status: .fail, detail: "\(error)"))
        }
        return checks
    }

    /// A database has no second file to disagree with.
    public func foreignRecordProblems() -> [String] { [] }
}

/// A transaction that could not begin because its pooled connection was dead.
struct StaleConnection: Error {
    let underlying: any Error
}

/// How machines see each other's liveness through the database: a process that claims an
/// issuance lease first takes a session-level advisory lock named for its lease owner, on a
/// connection of its own that it keeps open. The server releases the lock when that
/// session ends (the process exits or is killed, its machine is lost, the network is cut),
/// so a lease whose holder's lock is gone is taken over at once instead of after the lease
/// duration.
final class PostgresPresence: @unchecked Sendable {
    let vaultKey: UInt32
    let configuration: PostgresConnection.Configuration
    let logger: Logger
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private var announced: Set<String> = []

    init(vaultKey: UInt32, configuration: PostgresConnection.Configuration, logger: Logger) {
        self.vaultKey = vaultKey
        self.configuration = configuration
        self.logger = logger
    }

    /// The two 32-bit keys of `owner`'s lock: the vault's, and the owner's (FNV-1a).
    func key(_ owner: String) -> (Int64, Int64) {
        var hash: UInt32 = 0x811c_9dc5
        for byte in owner.utf8 { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
        return (Int64(vaultKey), Int64(hash))
    }

    /// Holds `owner`'s presence lock from now until this process ends.
    func announce(_ owner: String) throws {
        try lock.withLock {
            if let connection, connection.isClosed {
                // The session ended (a server restart): every lock went with it.
                self.connection = nil
                announced = []
            }
            guard !announced.contains(owner) else { return }
            let session = try connection ?? PostgresConnection.connect(
                on: PostgresConnection.defaultEventLoopGroup.any(), configuration: configuration, id: 0, logger: logger).wait()
            connection = session
            let (classID, objectID) = key(owner)
            _ = try PostgresRecords.answer("SELECT pg_advisory_lock(\(Int32(bitPattern: UInt32(classID))), \(Int32(bitPattern: UInt32(objectID))))",
                                           on: session, logger: logger)
            announced.insert(owner)
        }
    }

    /// Begins closing the session (its locks go with it); nil when there is none.
    func close() -> EventLoopFuture<Void>? {
        let session = lock.withLock { () -> PostgresConnection? in
            defer { connection = nil; announced = [] }
            return connection
        }
        // Kept until closed (PostgresNIO requires a connection closed before release).
        return session.map { session in session.close().always { _ in withExtendedLifetime(session) {} } }
    }

    deinit {
        if let connection { PostgresStorage.dispose(connection) }
    }
}
