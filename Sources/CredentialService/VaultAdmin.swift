import Foundation
import VaultCrypto
import VaultStore

/// What a front end asks of a vault as a whole, beside credentials: create it, keep its
/// accounts, keyslots and audit log, check it, copy it.
///
/// Each operation asks in the order a user expects: what can be refused without the
/// passphrase (no such account, a taken name, a destination that exists, a file that does
/// not parse) is refused before the passphrase is asked; the passphrase is asked once, and
/// only by an operation that needs the key. The vault is opened for the operation and
/// released after it: released, as the commands always left it, rather than `close()`d
/// (a released vault file's pool folds its write-ahead log back into the file; `close()`
/// was seen to leave it beside the file).
public struct VaultAdmin: Sendable {
    public let path: String
    public let busyTimeout: Double
    private let unlockSource: UnlockSource

    public init(path: String, busyTimeout: Double, unlock: UnlockSource) {
        self.path = path
        self.busyTimeout = busyTimeout
        unlockSource = unlock
    }

    /// An administration for what needs no passphrase (names, listings, keyslots): an
    /// operation that needs the key is refused as `locked`.
    public static func metadata(path: String, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue) -> VaultAdmin {
        VaultAdmin(path: path, busyTimeout: busyTimeout, unlock: UnlockSource(keyslot: nil) {
            throw ServiceError(.locked, "this reads the metadata of \(path) only: it has no passphrase to unlock with")
        })
    }

    // MARK: Creating

    /// Refuses a vault that cannot be created at `path` (one exists; a team vault's schema
    /// holds tables), before any passphrase is asked or stretched.
    public static func checkCreatable(path: String) throws(VaultError) {
        try Vault.checkCreatable(path: path)
    }

    /// Creates the vault at `path` with one keyslot, `label`, for `passphrase`.
    public static func create(path: String, passphrase: SecureBytes, kdf: KDFParameters, label: String, busyTimeout: Double) throws(VaultError) {
        _ = try Vault.create(path: path, passphrase: passphrase, kdf: kdf, label: label, actor: currentUserName(), busyTimeout: busyTimeout)
    }

    // MARK: Metadata (no passphrase)

    /// The account names, sorted.
    public func accountNames() throws -> [String] {
        try reading { vault, _ in try vault.accountNames() }
    }

    /// Every account's metadata (only those tagged `tag` when given), by name.
    public func accounts(tag: String? = nil) throws -> [AccountSummary] {
        try reading { vault, _ in try vault.accounts(tag: tag) }
    }

    /// The keyslots and their Argon2id parameters.
    public func keyslots() throws -> [KeyslotInfo] {
        try reading { vault, _ in try vault.keyslots() }
    }

    /// The audit entries, oldest first, about `account` and at or after `since` when given.
    public func auditRecords(account: String?, since: Date?) throws -> [AuditRecord] {
        try reading { vault, _ in try vault.auditRecords(account: account, since: since) }
    }

    /// Where the vault is, its format, and how many accounts and keyslots it holds.
    public struct Overview: Sendable, Codable {
        public var path: String
        public var format: Int
        public var accounts: Int
        public var keyslots: Int
    }

    public func overview() throws -> Overview {
        try reading { vault, _ in
            Overview(path: vault.path, format: vault.formatVersion, accounts: try vault.accountNames().count, keyslots: try vault.keyslots().count)
        }
    }

    // MARK: Checks

    /// `doctor`: the format, keyslots, file modes and clock; with `unlocking`, every sealed
    /// field of every account, the audit chain, and the vault's history against what this
    /// client has seen of it: a rolled-back vault is a failed check here, not a refusal,
    /// so the rest is still checked.
    public func doctor(unlocking: Bool) throws -> [DoctorCheck] {
        var source = unlockSource
        let history = source.history
        source.history = nil
        let vault = try Vault.open(path: path, mode: .readOnly, busyTimeout: busyTimeout)
        var checks = vault.healthChecks()
        checks.append(vault.timeCheck(now: vault.now(), longestLifetime: CredentialRules.longestLifetime))
        guard unlocking else { return checks }
        let unlocked = try source.unlock(vault)
        checks += unlocked.secretChecks()
        if let history {
            do {
                try unlocked.checkHistory(history)
                checks.append(DoctorCheck(check: "history", status: .ok, detail: "not behind what this machine has seen of it"))
            } catch {
                checks.append(DoctorCheck(check: "history", status: .fail, detail: "\(error)"))
            }
        }
        return checks
    }

    /// The audit chain, verified with the key (its chain key derives from the master key).
    public func verifyAudit() throws -> AuditVerification {
        try reading { _, unlock in try unlock().verifyAudit() }
    }

    // MARK: Accounts

    /// Adds account `name`; `secrets` is asked only once the name is known to be free and
    /// the vault unlocked.
    public func addAccount(name: String, environment: AccountEnvironment, tags: [String], secrets: () throws -> AccountSecrets) throws {
        try writing { vault, unlock in
            if (try? vault.account(named: name)) != nil { throw VaultError.accountExists(name: name) }
            let unlocked = try unlock()
            _ = try unlocked.addAccount(NewAccount(name: name, environment: environment, secrets: try secrets(), tags: tags))
        }
    }

    /// Changes account `name`; `changes` is asked once the account is known and the vault
    /// unlocked (it may read new credentials).
    public func editAccount(_ name: String, changes: () throws -> AccountChanges) throws {
        try writing { vault, unlock in
            _ = try vault.account(named: name)
            let unlocked = try unlock()
            _ = try unlocked.editAccount(name, try changes())
        }
    }

    /// Renames account `old` to `new` (its sealed fields re-bound to the new name).
    public func renameAccount(_ old: String, to new: String) throws {
        try writing { vault, unlock in
            _ = try vault.account(named: old)
            try Names.validate(new, what: "account name")
            if (try? vault.account(named: new)) != nil { throw VaultError.accountExists(name: new) }
            try unlock().renameAccount(old, to: new)
        }
    }

    /// Removes account `name` and everything stored for it, once `confirm` returns
    /// (it throws to decline).
    public func removeAccount(_ name: String, confirm: () throws -> Void) throws {
        try writing { vault, unlock in
            _ = try vault.account(named: name)
            try confirm()
            try unlock().removeAccount(name)
        }
    }

    /// One account's metadata and secrets, unlocked in this process (no hand-out is
    /// audited: this is for masked views).
    public func secrets(of name: String) throws -> (AccountSummary, AccountSecrets) {
        try reading { vault, unlock in
            let summary = try vault.account(named: name)
            return (summary, try unlock().secrets(of: name))
        }
    }

    /// Imports what `parse` reads (it runs once the vault is known to open, and its
    /// problems are reported before the passphrase is asked), all or none.
    public func importAccounts(update: Bool, source: String,
                               parse: () throws -> (candidates: [ImportCandidate], problems: [ImportProblem])) throws -> ImportSummary {
        try writing { vault, unlock in
            let (candidates, problems) = try parse()
            if !problems.isEmpty && candidates.isEmpty { throw VaultError.importRejected(source: source, problems: problems) }
            return try unlock().importAccounts(candidates, update: update, source: source, parseProblems: problems)
        }
    }

    /// The accounts named (every one when none are), in the order named, with their
    /// secrets, for `export`; an unknown name is an error. ``PlaintextExport/audited(_:)``
    /// records the export once it has happened.
    public func plaintextExport(names: [String]) throws -> PlaintextExport {
        try writing { vault, unlock in
            let unlocked = try unlock()
            let all = try unlocked.exportAccounts()
            guard !names.isEmpty else { return PlaintextExport(accounts: all, unlocked: unlocked) }
            let byName = Dictionary(all.map { ($0.0.name, $0) }, uniquingKeysWith: { a, _ in a })
            try VaultError.checkNamed(names, among: Set(byName.keys))
            return PlaintextExport(accounts: names.compactMap { byName[$0] }, unlocked: unlocked)
        }
    }

    /// Accounts and their secrets on their way out of the vault, to be audited once out.
    public struct PlaintextExport: @unchecked Sendable {
        public let accounts: [(AccountSummary, AccountSecrets)]
        let unlocked: UnlockedVault

        /// Writes the audit row of an export that happened (`detail`: its format and count).
        public func audited(_ detail: String) throws(VaultError) {
            try unlocked.recordAudit(action: "account.export", detail: detail)
        }
    }

    // MARK: Keyslots

    /// Adds keyslot `label`; `passphrase` (the new one) is asked once the vault is unlocked.
    public func addKeyslot(label: String, kdf: KDFParameters, passphrase: () throws -> SecureBytes) throws {
        try writing { _, unlock in try unlock().addKeyslot(label: label, passphrase: try passphrase(), kdf: kdf) }
    }

    public func removeKeyslot(label: String) throws {
        try writing { _, unlock in try unlock().removeKeyslot(label: label) }
    }

    /// Rewraps keyslot `label` (else the one that unlocked) under the passphrase `new` asks
    /// for (given that label); answers the label changed.
    @discardableResult
    public func changePassphrase(label: String?, kdf: KDFParameters?, new: (String) throws -> SecureBytes) throws -> String {
        try writing { vault, unlock in
            let unlocked = try unlock()
            let changed = label ?? unlocked.keyslotLabel
            try unlocked.changePassphrase(label: label, to: try new(changed), kdf: kdf)
            return changed
        }
    }

    // MARK: History

    /// `vault accept-restore`: the vault as it now is (restored from a backup, on
    /// purpose) becomes what this client has seen, audited with what it had seen before.
    /// Answers the row this client had seen, if any, the row the vault ended at, and the
    /// row that records the acceptance.
    public func acceptRestore() throws -> (seen: Int64?, found: Int64, accepted: Int64) {
        guard let history = unlockSource.history else { throw ServiceError(.badRequest, "this client keeps no history of its vaults") }
        var source = unlockSource
        source.history = nil
        let vault = try Vault.open(path: path, mode: .readWrite, busyTimeout: busyTimeout)
        let (seen, found, accepted) = try source.unlock(vault).acceptRestore(history)
        return (seen?.seq, found, accepted)
    }

    // MARK: Copying

    /// Copies the vault, every record verbatim, to `destination` (checked first, before the
    /// passphrase), checks the copy, and records it in this vault's audit log.
    public func copy(to destination: String) throws -> CopyReport {
        try Vault.checkCreatable(path: destination)
        return try writing { vault, unlock in
            let unlocked = try unlock()
            let report = try unlocked.copy(to: destination, busyTimeout: busyTimeout)
            try unlocked.recordAudit(action: "vault.copy", detail: "to \(destination)")
            return report
        }
    }

    // MARK: Opening

    private func reading<T>(_ body: (Vault, _ unlock: () throws -> UnlockedVault) throws -> T) throws -> T {
        try opened(.readOnly, body)
    }

    private func writing<T>(_ body: (Vault, _ unlock: () throws -> UnlockedVault) throws -> T) throws -> T {
        try opened(.readWrite, body)
    }

    /// Runs `body` on the vault opened in `mode`; `unlock` unlocks it (once) when the
    /// operation needs the key. After a change, the vault's head is remembered
    /// (``UnlockSource/history``): a restore to before it is refused too.
    private func opened<T>(_ mode: Vault.AccessMode, _ body: (Vault, _ unlock: () throws -> UnlockedVault) throws -> T) throws -> T {
        let vault = try Vault.open(path: path, mode: mode, busyTimeout: busyTimeout)
        var unlocked: UnlockedVault?
        let result = try body(vault) {
            if let unlocked { return unlocked }
            let opened = try unlockSource.unlock(vault)
            unlocked = opened
            return opened
        }
        if mode == .readWrite, let history = unlockSource.history, let unlocked { unlocked.rememberHead(history) }
        return result
    }
}
