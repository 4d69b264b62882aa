import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import VaultCrypto

/// The vault file: a SQLite database (GRDB), the records of docs/FORMAT.md in it.
///
/// A store opened read-only uses one read-only connection and never writes the file; a
/// read-write store uses a GRDB `DatabasePool` in WAL mode, its writer at
/// `synchronous = FULL`.
public final class SQLiteStorage: VaultStorage {
    /// How a command means to use the file.
    public enum AccessMode: Sendable { case readOnly, readWrite }

    public let location: String
    public let formatVersion: Int
    let db: any DatabaseWriter
    let busyTimeout: Double
    let mode: AccessMode

    /// The path of the vault file.
    public var path: String { location }

    /// The vault file and its `-wal` (WAL mode: the log is where the latest commits are).
    public func fileWatch() -> VaultFileWatch? { VaultFileWatch(path: location, logPath: location + "-wal") }

    private init(path: String, db: any DatabaseWriter, formatVersion: Int, mode: AccessMode, busyTimeout: Double) {
        self.location = path
        self.db = db
        self.formatVersion = formatVersion
        self.mode = mode
        self.busyTimeout = busyTimeout
    }

    /// Opens an existing vault file.
    ///
    /// - Throws: ``VaultError/vaultNotFound(path:)``, ``VaultError/notAVault(path:reason:)``
    ///   for an empty, text or foreign SQLite file, ``VaultError/newerFormat(path:found:supported:)``,
    ///   ``VaultError/damaged(path:detail:)``, ``VaultError/readOnly(path:)`` when `mode`
    ///   is `.readWrite` and the file cannot be written.
    public static func open(path: String, mode: AccessMode = .readWrite, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue) throws(VaultError) -> SQLiteStorage {
        try checkHeader(path: path)
        // Probe read-only first: a foreign SQLite file must come out of this untouched,
        // and a read-write open would switch it to WAL mode.
        let probe: DatabaseQueue
        let version: Int
        do {
            probe = try openReadOnly(path: path, busyTimeout: busyTimeout)
            let (appID, userVersion) = try probe.read { db in
                (try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                 try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0)
            }
            guard appID == Schema.applicationID else {
                throw VaultError.notAVault(path: path, reason: "a SQLite database, but not one kisvault made")
            }
            guard userVersion <= Schema.currentVersion else {
                throw VaultError.newerFormat(path: path, found: userVersion, supported: Schema.currentVersion)
            }
            guard userVersion >= 1 else {
                throw VaultError.damaged(path: path, detail: "format version \(userVersion): initialisation never finished")
            }
            version = userVersion
        } catch {
            throw translate(error, path: path, busyTimeout: busyTimeout)
        }
        if mode == .readOnly {
            return SQLiteStorage(path: path, db: probe, formatVersion: version, mode: mode, busyTimeout: busyTimeout)
        }
        try? probe.close()
        do {
            let pool = try openPool(path: path, busyTimeout: busyTimeout)
            if version < Schema.currentVersion {
                // An older vault is upgraded in place, in one transaction, on first write access.
                try pool.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) { try Migrations.apply(db); return .commit }
                }
            }
            return SQLiteStorage(path: path, db: pool, formatVersion: Schema.currentVersion, mode: mode, busyTimeout: busyTimeout)
        } catch {
            throw translate(error, path: path, busyTimeout: busyTimeout)
        }
    }

    /// Creates a new vault file at `path` whose first records `populate` writes, and opens
    /// it read-write.
    ///
    /// The file is built under a temporary name in the same directory and linked into
    /// place only when complete, so a failure or a kill leaves no half-made vault; an
    /// existing file at `path` is never replaced. Missing parent directories are created
    /// with mode 0700; the file is created 0600 and SQLite gives `-wal` and `-shm` the
    /// same mode, so no secret-bearing file is ever readable by others, even briefly.
    ///
    /// - Throws: ``VaultError/vaultExists(path:)``, ``VaultError/staleFiles(path:files:)``,
    ///   ``VaultError/readOnly(path:)``, ``VaultError/io(path:detail:)``.
    public static func create(path: String, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue,
                              populate: (any VaultRecords) throws -> Void) throws(VaultError) -> SQLiteStorage {
        try checkCreatable(path: path)
        let directory = PathName.directory(of: path)
        try makeDirectory(directory)
        let temporary = directory + "/.\(PathName.base(of: path)).init-\(hexString(randomBytes(6)))"
        let fd = Foundation.open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            if e == EACCES || e == EROFS || e == EPERM { throw .readOnly(path: path) }
            throw .io(path: path, detail: String(cString: strerror(e)))
        }
        _ = Glibc.close(fd)
        func removeTemporary() {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(temporary + suffix) }
        }
        do {
            let pool = try openPool(path: temporary, busyTimeout: busyTimeout)
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try Migrations.apply(db)
                    try populate(SQLiteRecords(db: db))
                    return .commit
                }
            }
            try pool.close()
        } catch {
            removeTemporary()
            throw translate(error, path: path, busyTimeout: busyTimeout)
        }
        // link(2) fails with EEXIST instead of replacing: a vault that appeared meanwhile
        // (another `init` racing us) is never overwritten.
        if link(temporary, path) != 0 {
            let e = errno
            removeTemporary()
            if e == EEXIST { throw .vaultExists(path: path) }
            throw .io(path: path, detail: String(cString: strerror(e)))
        }
        removeTemporary()
        return try open(path: path, mode: .readWrite, busyTimeout: busyTimeout)
    }

    /// Whether `init` may create a vault at `path`: nothing is there, and no SQLite file of
    /// an earlier vault lies beside it. SQLite would take a `-wal` left beside the path (a
    /// vault deleted while a process still had it open) as the new vault's own log and
    /// replay the old vault's pages into it: a vault that lists another's rows and cannot
    /// be unlocked.
    /// - Throws: ``VaultError/vaultExists(path:)``, ``VaultError/staleFiles(path:files:)``.
    public static func checkCreatable(path: String) throws(VaultError) {
        if FileManager.default.fileExists(atPath: path) || isSymlink(path) { throw .vaultExists(path: path) }
        let stale = ["-wal", "-shm", "-journal"].map { path + $0 }.filter { FileManager.default.fileExists(atPath: $0) || isSymlink($0) }
        if !stale.isEmpty { throw .staleFiles(path: path, files: stale) }
    }

    /// A file has the machine's clock only.
    public func clockOffset() -> TimeInterval { 0 }

    public func close() {
        try? db.close()
    }

    public func write<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        guard mode == .readWrite else { throw .readOnly(path: path) }
        do {
            return try db.writeWithoutTransaction { db in
                var result: T?
                // IMMEDIATE: the write lock is taken up front, so a busy vault fails fast
                // with a clear error rather than deadlocking a read-then-write.
                try db.inTransaction(.immediate) {
                    result = try body(SQLiteRecords(db: db))
                    return .commit
                }
                return result!
            }
        } catch {
            throw Self.translate(error, path: path, busyTimeout: busyTimeout)
        }
    }

    public func read<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        do {
            return try db.read { db in try body(SQLiteRecords(db: db)) }
        } catch {
            throw Self.translate(error, path: path, busyTimeout: busyTimeout)
        }
    }

    // MARK: Connections

    /// A read-only connection. A WAL database needs its `-shm` file; when that is missing
    /// and the directory cannot be written (a vault on read-only media, or owned by another
    /// user), SQLite's `immutable` URI parameter still lets us read it: nothing can be
    /// written there anyway, and the read-only commands only list metadata.
    static func openReadOnly(path: String, busyTimeout: Double) throws -> DatabaseQueue {
        let config = configuration(readonly: true, busyTimeout: busyTimeout)
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            _ = try queue.read { try Int.fetchOne($0, sql: "PRAGMA user_version") }
            return queue
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CANTOPEN {
            return try openImmutable(path: path, busyTimeout: busyTimeout)
        }
    }

    /// The main file alone, its write-ahead log ignored (SQLite's `immutable`).
    static func openImmutable(path: String, busyTimeout: Double) throws -> DatabaseQueue {
        let escaped = path.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "?", with: "%3f")
            .replacingOccurrences(of: "#", with: "%23")
        return try DatabaseQueue(path: "file:\(escaped)?immutable=1", configuration: configuration(readonly: true, busyTimeout: busyTimeout))
    }

    static func configuration(readonly: Bool, busyTimeout: Double) -> Configuration {
        var config = Configuration()
        config.readonly = readonly
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(busyTimeout)
        config.label = "kisvault"
        config.prepareDatabase { db in
            // secure_delete: freed pages are zeroed, so an old ciphertext or a removed
            // account's row does not linger in free pages of the file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        return config
    }

    /// The read-write connection pool, its writer at `synchronous = FULL`: a commit is on
    /// disk before we report success (a token KIS issued and we reported must survive a
    /// power cut). Set here, after the pool is open, because GRDB's pool switches its
    /// writer to WAL with `synchronous = NORMAL` after `prepareDatabase` has run; NORMAL
    /// in WAL mode may lose the last commits on power loss.
    static func openPool(path: String, busyTimeout: Double) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration(readonly: false, busyTimeout: busyTimeout))
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        return pool
    }

    /// Rejects an empty file or one that is not SQLite before SQLite sees it (SQLite treats
    /// an empty file as a new database and would write to it).
    static func checkHeader(path: String) throws(VaultError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw .vaultNotFound(path: path) }
            throw .io(path: path, detail: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notAVault(path: path, reason: "not a regular file") }
        guard info.st_size > 0 else { throw .notAVault(path: path, reason: "the file is empty") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .io(path: path, detail: "cannot read the file (permission denied?)")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 16)) ?? Data()
        guard head == Data("SQLite format 3\0".utf8) else {
            throw .notAVault(path: path, reason: info.st_size < 16 ? "too short to be a database" : "not a SQLite database")
        }
        guard info.st_size >= 512 else { throw .damaged(path: path, detail: "the file is truncated") }
    }

    static func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    /// Creates `directory` and missing parents with mode 0700. An existing directory is
    /// left as it is (`doctor` reports a loose mode; we never chmod what we did not create).
    static func makeDirectory(_ directory: String) throws(VaultError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            if !isDir.boolValue { throw .io(path: directory, detail: "not a directory") }
            return
        }
        let parent = PathName.directory(of: directory)
        if parent != directory { try makeDirectory(parent) }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            let e = errno
            if e == EACCES || e == EROFS || e == EPERM { throw .readOnly(path: directory) }
            throw .io(path: directory, detail: String(cString: strerror(e)))
        }
    }

    /// Maps SQLite and other failures to the vault's typed errors, once, here.
    static func translate(_ error: any Error, path: String, busyTimeout: Double) -> VaultError {
        if let error = error as? VaultError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return .busy(path: path, timeoutSeconds: busyTimeout)
            case .SQLITE_READONLY, .SQLITE_PERM:
                return .readOnly(path: path)
            case .SQLITE_CANTOPEN:
                return access(PathName.directory(of: path), W_OK) == 0 && access(path, W_OK) == 0
                    ? .io(path: path, detail: "SQLite cannot open the file") : .readOnly(path: path)
            case .SQLITE_CORRUPT:
                return .damaged(path: path, detail: "SQLite reports corruption")
            case .SQLITE_NOTADB:
                return .notAVault(path: path, reason: "not a SQLite database")
            case .SQLITE_FULL:
                return .io(path: path, detail: "the disk is full; this change was not written (free some space and try again)")
            case .SQLITE_IOERR:
                // The most likely cause on a vault: its -wal was deleted while another
                // process (an agent) kept the vault open; SQLite then sees a -shm that
                // describes a log that is not there.
                if walShorterThanIndex(path) { return .walMissing(path: path) }
                return .io(path: path, detail: "I/O error (SQLite \(error.extendedResultCode.rawValue))")
            default:
                // The message is SQLite's, with no bound values (GRDB hides arguments
                // unless publicStatementArguments is set), so it carries no secret.
                return .io(path: path, detail: "SQLite error \(error.resultCode.rawValue): \(error.message ?? "")")
            }
        }
        if let error = error as? CryptoError {
            return .io(path: path, detail: "cryptographic failure: \(error)")
        }
        return .io(path: path, detail: "\(error)")
    }
}

/// True when the vault's `-shm` (the WAL index) describes more log than its `-wal` holds:
/// the log was deleted (or truncated) while a process had the vault open, and SQLite can
/// only say "I/O error". The index header (sqlite.org/walformat.html) has the page size
/// at offset 14 (u16, 1 meaning 65536) and the last valid frame at offset 16 (u32), in the
/// machine's byte order; each frame is a 24-byte header and a page, after a 32-byte header.
func walShorterThanIndex(_ path: String) -> Bool {
    guard let handle = FileHandle(forReadingAtPath: path + "-shm") else { return false }
    defer { try? handle.close() }
    guard let header = try? handle.read(upToCount: 48), header.count == 48 else { return false }
    let (pageField, frameField) = header.withUnsafeBytes {
        ($0.loadUnaligned(fromByteOffset: 14, as: UInt16.self), $0.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
    }
    let page = pageField == 1 ? 65_536 : Int(pageField)
    let frames = Int(frameField)
    guard frames > 0, page >= 512 else { return false }
    var info = stat()
    let walSize = stat(path + "-wal", &info) == 0 ? Int(info.st_size) : 0
    return walSize < 32 + frames * (24 + page)
}

/// Applies the frozen migrations in order, keeping `user_version` in step.
enum Migrations {
    static func apply(_ db: Database) throws {
        let current = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if current == 0 {
            try db.execute(sql: "PRAGMA application_id = \(Schema.applicationID)")
        }
        for (index, sql) in Schema.migrations.enumerated() where index >= current {
            try db.execute(sql: sql)
            try db.execute(sql: "PRAGMA user_version = \(index + 1)")
        }
    }
}
