#if canImport(Glibc)
import Glibc
#endif

/// What kind of vault a location names, told apart here and nowhere else: a `postgres://`
/// (or `postgresql://`) URL names a team vault on PostgreSQL, anything else a vault file.
/// Each kind's storage is its ``VaultBackend``; nothing outside the storages tests the
/// location's shape.
public enum VaultKind: Sendable, Equatable {
    case file, team

    public static func of(_ location: String) -> VaultKind {
        PostgresLocation.isURL(location) ? .team : .file
    }

    /// The storage that keeps this kind of vault.
    public var backend: any VaultBackend.Type {
        switch self {
        case .file: SQLiteStorage.self
        case .team: PostgresStorage.self
        }
    }
}

/// A storage as a kind of place: how a vault there is opened, created, checked before
/// creation, and named as one vault (``identity(of:)``) wherever it is reached from.
public protocol VaultBackend: VaultStorage {
    static func open(location: String, mode: SQLiteStorage.AccessMode, busyTimeout: Double) throws(VaultError) -> Self
    static func create(location: String, busyTimeout: Double, populate: (any VaultRecords) throws -> Void) throws(VaultError) -> Self
    /// Refuses a location where no vault may be created, before any key is stretched.
    static func checkCreatable(location: String) throws(VaultError)
    /// The one name of the vault at `location` (nil when there is none to name): two
    /// locations with the same identity are the same vault.
    static func identity(of location: String) -> String?
}

extension SQLiteStorage: VaultBackend {
    public static func open(location: String, mode: AccessMode, busyTimeout: Double) throws(VaultError) -> SQLiteStorage {
        try open(path: location, mode: mode, busyTimeout: busyTimeout)
    }

    public static func create(location: String, busyTimeout: Double, populate: (any VaultRecords) throws -> Void) throws(VaultError) -> SQLiteStorage {
        try create(path: location, busyTimeout: busyTimeout, populate: populate)
    }

    public static func checkCreatable(location: String) throws(VaultError) {
        try checkCreatable(path: location)
    }

    /// By device and inode: a hard or symbolic link is the same vault; a copy elsewhere is
    /// not, whatever its `vault_id` says.
    public static func identity(of location: String) -> String? {
        var info = stat()
        guard stat(location, &info) == 0 else { return nil }
        return "file:\(info.st_dev):\(info.st_ino)"
    }
}

extension PostgresStorage: VaultBackend {
    public static func open(location: String, mode: SQLiteStorage.AccessMode, busyTimeout: Double) throws(VaultError) -> PostgresStorage {
        try open(url: location, mode: mode, busyTimeout: busyTimeout)
    }

    public static func create(location: String, busyTimeout: Double, populate: (any VaultRecords) throws -> Void) throws(VaultError) -> PostgresStorage {
        try create(url: location, busyTimeout: busyTimeout, populate: populate)
    }

    /// The URL must be one kisvault uses; whether the schema is empty is checked by
    /// ``create(location:busyTimeout:populate:)``, in its transaction.
    public static func checkCreatable(location: String) throws(VaultError) {
        _ = try PostgresLocation(location)
    }

    /// By server, port, database and schema.
    public static func identity(of location: String) -> String? {
        guard let place = try? PostgresLocation(location) else { return nil }
        return "postgres:\(place.host):\(place.port)/\(place.database)/\(place.schema)"
    }
}
