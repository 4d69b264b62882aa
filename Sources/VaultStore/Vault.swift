import Foundation
import VaultCrypto

/// An open vault: metadata is readable, secrets need ``unlock(passphrase:keyslot:actor:)``.
///
/// The records live in a ``VaultStorage``; everything on this side of it (keyslots and the
/// master key, sealing under per-record keys, validation, the audit chain) is the same
/// whatever the storage. Open a vault file with ``open(path:mode:busyTimeout:)`` or create
/// one with ``create(path:passphrase:kdf:label:actor:busyTimeout:)``.
public final class Vault: Sendable {
    /// How a command means to use the vault.
    public typealias AccessMode = SQLiteStorage.AccessMode

    /// Where the records are.
    public let storage: any VaultStorage

    /// Where the vault is, as given (a file path), for messages.
    public var path: String { storage.location }
    /// The format version the records are at.
    public var formatVersion: Int { storage.formatVersion }

    public init(storage: any VaultStorage) {
        self.storage = storage
    }

    /// Opens an existing vault file.
    ///
    /// - Throws: ``VaultError/vaultNotFound(path:)``, ``VaultError/notAVault(path:reason:)``
    ///   for an empty, text or foreign SQLite file, ``VaultError/newerFormat(path:found:supported:)``,
    ///   ``VaultError/damaged(path:detail:)``, ``VaultError/readOnly(path:)`` when `mode`
    ///   is `.readWrite` and the file cannot be written.
    /// `path` may also be a `postgres://` URL: a team vault (``PostgresStorage``).
    public static func open(path: String, mode: AccessMode = .readWrite, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue) throws(VaultError) -> Vault {
        Vault(storage: try VaultKind.of(path).backend.open(location: path, mode: mode, busyTimeout: busyTimeout))
    }

    /// Creates a new vault file at `path` with one keyslot, and returns it unlocked (see
    /// ``SQLiteStorage/create(path:busyTimeout:populate:)`` for how the file comes to be).
    ///
    /// - Throws: ``VaultError/vaultExists(path:)``, ``VaultError/staleFiles(path:files:)``,
    ///   ``VaultError/readOnly(path:)``, ``VaultError/io(path:detail:)``.
    public static func create(
        path: String, passphrase: SecureBytes, kdf: KDFParameters, label: String,
        actor: String, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue
    ) throws(VaultError) -> UnlockedVault {
        try Names.validate(label, what: "keyslot label")
        let backend = VaultKind.of(path).backend
        // Refused before the passphrase is stretched: a KDF run is not free.
        try backend.checkCreatable(location: path)
        return try create(passphrase: passphrase, kdf: kdf, label: label, actor: actor, location: path) { populate throws(VaultError) in
            try backend.create(location: path, busyTimeout: busyTimeout, populate: populate)
        }
    }

    /// Creates a vault with one keyslot in the storage `makeStorage` makes, which must run
    /// the given records' writer in the transaction that creates it.
    public static func create(
        passphrase: SecureBytes, kdf: KDFParameters, label: String, actor: String, location: String,
        makeStorage: (_ populate: (any VaultRecords) throws -> Void) throws(VaultError) -> any VaultStorage
    ) throws(VaultError) -> UnlockedVault {
        try Names.validate(label, what: "keyslot label")
        let master = SecureBytes.random(count: 32)
        let keys = VaultKeys(master: master)
        let slot: KeyslotRecord
        do {
            slot = try KeyslotRecord.make(label: label, passphrase: passphrase, master: master, kdf: kdf, now: Date())
        } catch {
            throw .io(path: location, detail: "cannot derive the passphrase key: \(error)")
        }
        let storage = try makeStorage { records in
            try records.insertIdentity(VaultIdentity(vaultID: Data(randomBytes(16)), createdAt: Timestamp.string(Date()), keyCheck: Data(keys.keyCheck)))
            try records.insertKeyslot(slot)
            try records.setMetaText(FieldBinding.metaKey, FieldBinding.done)
            try AuditLog.append(records, keys: keys, entry: AuditEntry(actor: actor, keyslot: label, action: "vault.init", account: nil, outcome: .ok, detail: "kdf=\(kdf.opslimit)/\(kdf.memlimit)"))
        }
        return UnlockedVault(vault: Vault(storage: storage), keys: keys, keyslotLabel: label, actor: actor)
    }

    /// Whether `init` may create a vault file at `path`
    /// (``SQLiteStorage/checkCreatable(path:)``).
    public static func checkCreatable(path: String) throws(VaultError) {
        try VaultKind.of(path).backend.checkCreatable(location: path)
    }

    /// Closes the storage's connections. Further use throws.
    public func close() {
        storage.close()
    }

    /// Runs a write transaction (see ``VaultStorage/write(_:)``).
    func write<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        try storage.write(body)
    }

    /// Runs a read.
    func read<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        try storage.read(body)
    }

    /// ``read(_:)`` for a body of one statement (``VaultStorage/readStatement(_:)``).
    func readStatement<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        try storage.readStatement(body)
    }
}
