import Foundation

/// Where a vault's records live.
///
/// Everything above it in VaultStore (keyslots and the master key, sealing and opening
/// fields under per-record keys, validation, the MAC chain of the audit log) is written
/// once, against this protocol; a storage keeps and returns exactly the bytes it is given
/// (sealed blobs, names, timestamps in the text form of docs/FORMAT.md) and does no
/// cryptography, so it never holds anything the vault file would not.
///
/// ``SQLiteStorage`` (the vault file) is the first implementation. A second one conforms
/// here and is chosen where a vault is opened; the key manager and the CLI do not change.
public protocol VaultStorage: Sendable {
    /// Where the records are, for messages: the file path (never a password).
    var location: String { get }
    /// The format version of the records (docs/FORMAT.md); the current one once opened
    /// for writing (an older store is upgraded in place).
    var formatVersion: Int { get }
    /// A watch on the files the store lives in, taken now, for a long-lived process (the
    /// agent) to notice them replaced or deleted under it; nil for a store that is no file
    /// (a team vault: the database is the vault). The default is nil.
    func fileWatch() -> VaultFileWatch?
    /// Runs `body` on one consistent view of the records.
    func read<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T
    /// Runs `body`, which reads with a single statement (one statement is its own
    /// consistent view), without a transaction around it: a server saves the BEGIN and
    /// COMMIT round trips. The default is ``read(_:)``.
    func readStatement<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T
    /// Runs `body` in a write transaction that holds the store's write lock from its first
    /// statement (a read-then-write never deadlocks against another writer; a busy store
    /// fails with ``VaultError/busy(path:timeoutSeconds:)``). Commits when `body` returns,
    /// rolls everything back when it throws.
    /// - Throws: ``VaultError/readOnly(path:)`` on a store opened read-only.
    func write<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T
    /// `doctor`'s checks of the store itself, needing no key: file modes, the engine's
    /// integrity check.
    func storageChecks() -> [DoctorCheck]
    /// Signs, visible only to the store, that its records are not all one vault's (a
    /// SQLite `-wal` left by a deleted vault); each a sentence for `doctor`.
    func foreignRecordProblems() -> [String]
    /// Closes the connections. Further use throws.
    func close()
    /// How far the storage's clock is ahead of ``MachineClock`` (0 for a file).
    func clockOffset() -> TimeInterval
    /// Readies, in the background, what claiming a lease as `owner` will need (a team
    /// vault's presence session), so that the first claim does not wait for it; a failure
    /// is left for the claim to meet. The default does nothing.
    func prepareToClaim(owner: String)
}

/// The records of one vault inside one transaction of a ``VaultStorage``. Methods that
/// change records may only be called inside ``VaultStorage/write(_:)``.
///
/// Accounts are addressed by name where a caller starts from a name, and by their record
/// id (which never changes: it is part of every field key) everywhere else.
public protocol VaultRecords {
    // MARK: Identity and audit head (the `meta` table)

    /// The vault's identity, written once at creation.
    func identity() throws -> VaultIdentity?
    func insertIdentity(_ identity: VaultIdentity) throws
    /// The last audit row's number and MAC, nil before the first row.
    func auditHead() throws -> AuditHead?
    func setAuditHead(_ head: AuditHead) throws
    /// A text value of `meta` (`field_binding`), nil when there is none.
    func metaText(_ key: String) throws -> String?
    func setMetaText(_ key: String, _ value: String) throws

    // MARK: Keyslots

    /// Every keyslot, in creation order.
    func keyslots() throws -> [KeyslotRecord]
    func insertKeyslot(_ slot: KeyslotRecord) throws
    /// Replaces the slot with the same label; false when there is none.
    func replaceKeyslot(_ slot: KeyslotRecord) throws -> Bool
    /// False when there is no slot `label`.
    func deleteKeyslot(label: String) throws -> Bool

    // MARK: Accounts

    /// Accounts by name, optionally only those tagged `tag`: one statement (it is read
    /// with ``VaultStorage/readStatement(_:)``).
    func accountSummaries(tag: String?) throws -> [AccountSummary]
    func accountSummary(named name: String) throws -> AccountSummary?
    /// Account names, sorted, optionally only those tagged `tag`.
    func accountNames(tag: String?) throws -> [String]
    func sealedAccount(named name: String) throws -> SealedAccount?
    /// Every account's sealed fields, by name.
    func sealedAccounts() throws -> [SealedAccount]
    /// The account whose appkey has `fingerprint`, other than account `id`.
    func accountName(withFingerprint fingerprint: Data, except id: String?) throws -> String?
    func accountExists(id: String) throws -> Bool
    /// Inserts an account with its tags and times.
    func insertAccount(_ account: SealedAccount, tags: [String], times: AccountTimes) throws
    func updateAccount(id: String, _ change: AccountRecordChange) throws
    func addTag(_ tag: String, to id: String) throws
    func removeTag(_ tag: String, from id: String) throws
    func replaceTags(of id: String, with tags: [String]) throws
    func tagCount(of id: String) throws -> Int
    /// Removes the account and everything stored for it; false when there is none.
    func deleteAccount(named name: String) throws -> Bool

    // MARK: Credentials and issuance state

    /// The stored credential of account `name` in `slot`.
    func credential(account name: String, kind: CredentialKind, slot: CredentialSlot) throws -> StoredCredential?
    func credential(accountID: String, kind: CredentialKind, slot: CredentialSlot) throws -> StoredCredential?
    /// Every stored credential, by account name.
    func allCredentials() throws -> [StoredCredential]
    /// Stores `credential` as current: the current one becomes previous, the previous one
    /// is dropped.
    func storeCurrent(_ credential: StoredCredential) throws
    func deleteCredential(accountID: String, kind: CredentialKind, slot: CredentialSlot) throws
    /// Drops every credential and all issuance state of an account (its appkey changed).
    func forgetIssued(accountID: String) throws
    /// Replaces the sealed value of one stored credential in place (re-sealed under another
    /// binding: a rename), keeping its id and times.
    func replaceCredentialValue(accountID: String, kind: CredentialKind, slot: CredentialSlot, value: Data) throws

    /// The issuance state of account `name` for `kind`.
    func issuanceSnapshot(account name: String, kind: CredentialKind) throws -> IssuanceSnapshot?
    /// The issuance state of every account (optionally tagged `tag`), by name.
    func issuanceSnapshots(kind: CredentialKind, tag: String?) throws -> [IssuanceSnapshot]
    /// The issuance state of the accounts named `names` that exist, in any order: one
    /// statement for a batch where a round trip costs (see the default below).
    func issuanceSnapshots(accounts names: [String], kind: CredentialKind) throws -> [IssuanceSnapshot]
    /// Which of `ids` are accounts still.
    func existingAccountIDs(_ ids: [String]) throws -> Set<String>
    /// Every issuance row as stored (for `vault copy`).
    func issuanceRecords() throws -> [IssuanceRecord]
    func insertIssuance(_ record: IssuanceRecord) throws
    /// The sealed appkey and appsecret of account `id`.
    func sealedAppCredentials(accountID: String) throws -> (appkey: Data, appsecret: Data)?
    /// The sealed appkeys and appsecrets of those of `ids` that exist, by account id.
    func sealedAppCredentials(accountIDs ids: [String]) throws -> [String: (appkey: Data, appsecret: Data)]
    /// Whether the process that holds a lease as `owner` is still there, as far as the
    /// storage can tell (a database sees its clients' sessions); nil when it cannot.
    func leaseHolderAlive(_ owner: String) throws -> Bool?
    /// Takes the issuance lease and records the request time, in one change.
    func claimLease(accountID: String, kind: CredentialKind, owner: String, until: String, requestAt: String) throws
    /// Releases the lease if `owner` holds it.
    func releaseLease(accountID: String, kind: CredentialKind, owner: String) throws
    /// Extends the lease and moves the request time if `owner` still holds the lease;
    /// says whether it did.
    func renewLease(accountID: String, kind: CredentialKind, owner: String, until: String, requestAt: String) throws -> Bool
    /// After a stored issuance: clears the last error and releases the lease if `owner`
    /// holds it.
    func clearError(accountID: String, kind: CredentialKind, releasingLeaseOf owner: String) throws
    func markRejected(accountID: String, kind: CredentialKind, code: String, message: String) throws
    func recordError(accountID: String, kind: CredentialKind, message: String) throws

    // MARK: Audit log

    func appendAudit(_ record: AuditRecord, mac: Data) throws
    /// Rows oldest first, optionally for one account and from `since` (text form) on.
    func auditRecords(account: String?, since: String?) throws -> [AuditRecord]
    /// Calls `body` with every row and its MAC, oldest first, without holding them all.
    func forEachAuditRow(_ body: (AuditRecord, Data) throws -> Void) throws
    func auditRowCount() throws -> Int
    /// Row `seq` with its MAC.
    func auditRow(seq: Int64) throws -> (AuditRecord, Data)?
    /// The row with the highest number, with its MAC.
    func lastAuditRow() throws -> (AuditRecord, Data)?
}

extension VaultRecords {
    // One lookup per item: right for a file read in-process, where a statement costs
    // microseconds. A server's records answer a batch in one statement instead.

    public func issuanceSnapshots(accounts names: [String], kind: CredentialKind) throws -> [IssuanceSnapshot] {
        try names.compactMap { try issuanceSnapshot(account: $0, kind: kind) }
    }

    public func existingAccountIDs(_ ids: [String]) throws -> Set<String> {
        Set(try ids.filter { try accountExists(id: $0) })
    }

    public func sealedAppCredentials(accountIDs ids: [String]) throws -> [String: (appkey: Data, appsecret: Data)] {
        var found: [String: (appkey: Data, appsecret: Data)] = [:]
        for id in ids { found[id] = try sealedAppCredentials(accountID: id) }
        return found
    }
}

/// What identifies a vault, written once by `init`.
public struct VaultIdentity: Sendable, Equatable {
    /// 16 random bytes.
    public var vaultID: Data
    public var createdAt: String
    /// BLAKE2b of the master key under a fixed label: tells a right passphrase from a
    /// slot of another vault.
    public var keyCheck: Data

    public init(vaultID: Data, createdAt: String, keyCheck: Data) {
        self.vaultID = vaultID
        self.createdAt = createdAt
        self.keyCheck = keyCheck
    }
}

/// The chain head kept beside the audit log: catches a deleted tail.
public struct AuditHead: Sendable, Equatable {
    public var seq: Int64
    public var mac: Data

    public init(seq: Int64, mac: Data) {
        self.seq = seq
        self.mac = mac
    }
}

/// An account row as stored: plaintext metadata and sealed fields.
public struct SealedAccount: Sendable {
    public var id: String
    public var name: String
    public var environment: AccountEnvironment
    /// Keyed BLAKE2b of the appkey: one account per appkey without opening any field.
    public var appkeyFingerprint: Data
    public var appkey: Data
    public var appsecret: Data
    public var accountNumber: Data?
    public var htsID: Data?

    public init(id: String, name: String, environment: AccountEnvironment, appkeyFingerprint: Data,
                appkey: Data, appsecret: Data, accountNumber: Data?, htsID: Data?) {
        self.id = id
        self.name = name
        self.environment = environment
        self.appkeyFingerprint = appkeyFingerprint
        self.appkey = appkey
        self.appsecret = appsecret
        self.accountNumber = accountNumber
        self.htsID = htsID
    }

    /// The sealed blob of `field`.
    func blob(_ field: AccountField) -> Data? {
        switch field {
        case .appkey: appkey
        case .appsecret: appsecret
        case .accountNumber: accountNumber
        case .htsID: htsID
        }
    }
}

/// An account row's times (text form).
public struct AccountTimes: Sendable, Equatable {
    public var createdAt: String
    public var updatedAt: String
    public var secretsUpdatedAt: String

    public init(createdAt: String, updatedAt: String, secretsUpdatedAt: String) {
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.secretsUpdatedAt = secretsUpdatedAt
    }

    /// All three `now`: a new account.
    public init(now: String) { self.init(createdAt: now, updatedAt: now, secretsUpdatedAt: now) }
}

/// An issuance row as stored: the lease, the once-a-minute clock, a rejection, the last
/// error (times in text form).
public struct IssuanceRecord: Sendable, Equatable {
    public var accountID: String
    public var kind: CredentialKind
    public var leaseOwner: String?
    public var leaseExpiresAt: String?
    public var lastRequestAt: String?
    public var rejectedCode: String?
    public var rejectedMessage: String?
    public var lastError: String?

    public init(accountID: String, kind: CredentialKind, leaseOwner: String?, leaseExpiresAt: String?, lastRequestAt: String?,
                rejectedCode: String?, rejectedMessage: String?, lastError: String?) {
        self.accountID = accountID
        self.kind = kind
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.lastRequestAt = lastRequestAt
        self.rejectedCode = rejectedCode
        self.rejectedMessage = rejectedMessage
        self.lastError = lastError
    }
}

/// One change to an account row. `updated_at` is set by the caller with ``touched(_:)``.
public enum AccountRecordChange: Sendable {
    case environment(AccountEnvironment)
    case accountNumber(Data?)
    case htsID(Data?)
    /// The appkey and appsecret sealed anew; `secrets_updated_at` becomes `at` (nil: the
    /// same appkey re-sealed, the time stays).
    case appCredentials(fingerprint: Data, appkey: Data, appsecret: Data, at: String?)
    case name(String)
    case touched(String)
}

/// The two places a credential of one kind is kept.
public enum CredentialSlot: String, Sendable, CaseIterable {
    case current, previous
}

/// A stored approval key or token: its sealed value and plaintext times.
public struct StoredCredential: Sendable {
    public var accountID: String
    /// The account's name (filled when read; ignored when stored).
    public var account: String
    public var kind: CredentialKind
    public var slot: CredentialSlot
    /// The credential's own record id, part of its key.
    public var id: String
    public var value: Data
    public var issuedAt: String
    public var expiresAt: String

    public init(accountID: String, account: String, kind: CredentialKind, slot: CredentialSlot, id: String,
                value: Data, issuedAt: String, expiresAt: String) {
        self.accountID = accountID
        self.account = account
        self.kind = kind
        self.slot = slot
        self.id = id
        self.value = value
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    /// The record id its value is sealed under.
    var recordID: String { "\(accountID).\(id)" }
}

extension VaultStorage {
    public func fileWatch() -> VaultFileWatch? { nil }

    public func readStatement<T>(_ body: (any VaultRecords) throws -> T) throws(VaultError) -> T {
        try read(body)
    }

    public func prepareToClaim(owner: String) {}
}

/// The device and inode of a store's files when it was opened: the vault file and, once it
/// exists, its write-ahead log. ``problem()`` says which of them was replaced or deleted.
public final class VaultFileWatch: @unchecked Sendable {
    // @unchecked: `log` is set once, under `lock`.
    private let lock = NSLock()
    private let path: String
    private let logPath: String?
    private let file: (dev_t, ino_t)?
    private var log: (dev_t, ino_t)?

    /// `logPath`: the write-ahead log beside `path`, if the store keeps one.
    public init(path: String, logPath: String?) {
        self.path = path
        self.logPath = logPath
        file = Self.identity(path)
        log = logPath.flatMap(Self.identity)
    }

    /// The vault file's device and inode when the watch was taken, if it was there.
    public var opened: (device: dev_t, inode: ino_t)? { file.map { (device: $0.0, inode: $0.1) } }

    /// What is wrong with the files now, or nil while they are the ones opened.
    public func problem() -> String? {
        guard let file, let now = Self.identity(path), now == file else { return "the vault file \(path) was replaced or removed" }
        guard let logPath else { return nil }
        let current = Self.identity(logPath)
        return lock.withLock { () -> String? in
            guard let known = log else {
                log = current
                return nil
            }
            guard let current, current == known else { return "the vault's write-ahead log \(logPath) was deleted or replaced" }
            return nil
        }
    }

    static func identity(_ path: String) -> (dev_t, ino_t)? {
        var info = stat()
        return stat(path, &info) == 0 ? (info.st_dev, info.st_ino) : nil
    }
}
