import CredentialService
import Foundation
import KISAPI
import KeyManager
import Logging
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The agent's one piece of shared state: the unlocked vault, or nothing once locked.
///
/// Requests bracket their use of the keys with ``begin()`` and ``end()``; the keys are made
/// accessible while at least one request runs and inaccessible otherwise. Locking refuses
/// every new request at once and stops running bulk runs (no account started after it);
/// what is in flight finishes and is stored, and the vault is closed and its keys wiped
/// (`sodium_free`) when the last running request ends, never under one.
final class AgentState: @unchecked Sendable {
    private let lock = NSLock()
    private var manager: KeyManager?
    /// Requests running on `manager`.
    private var active = 0
    /// Managers locked while requests still ran on them, with how many still do: each is
    /// closed when its last request ends.
    private var draining: [ObjectIdentifier: (manager: KeyManager, active: Int)] = [:]
    /// The bulk runs going on (requests' and renewal's), stopped by a lock.
    private var runs: [ObjectIdentifier: BulkProgress] = [:]
    private var lastActivity: Date
    private(set) var lockReason: String?
    let started: Date
    /// The agent's clock: idle and maximum-lifetime locks are measured on it, so a test
    /// moves it instead of sleeping.
    let now: @Sendable () -> Date
    let idleLock: TimeInterval?
    let maxLock: TimeInterval?
    let vaultPath: String
    /// The KIS URLs the agent's client talks to.
    let endpoints: KISEndpoints
    /// The vault's files as they were at unlock (the storage's watch; nil for a team vault):
    /// replacing the file, or deleting its `-wal` while the agent runs (every later write
    /// would go into an unlinked file no other process sees), locks the agent.
    private var files: VaultFileWatch?
    let logger: Logger
    /// A team vault's ``VaultIdentity``, worked out once (its location does not change).
    private let teamVault: String?
    /// What a re-unlocked manager is built from: the same KIS client (its pool outlives a
    /// lock), configuration and logger as the first.
    private let client: KISClient
    private let managerConfiguration: KeyManagerConfiguration

    /// What this client has seen of its vaults' histories (``HeadMemory``), if it keeps it.
    private let history: HeadMemory?

    init(manager: KeyManager, vaultPath: String, idleLock: TimeInterval?, maxLock: TimeInterval?, logger: Logger,
         now: @escaping @Sendable () -> Date = { Date() }, history: HeadMemory? = nil) {
        self.history = history
        self.now = now
        started = now()
        lastActivity = started
        self.manager = manager
        self.vaultPath = vaultPath
        teamVault = VaultKind.of(vaultPath) == .team ? VaultIdentity.of(vaultPath) : nil
        self.endpoints = manager.client.configuration.endpoints
        self.client = manager.client
        self.managerConfiguration = manager.configuration
        self.idleLock = idleLock
        self.maxLock = maxLock
        self.logger = logger
        files = manager.vault.vault.storage.fileWatch()
        manager.vault.protectKeys()
    }

    /// The ``VaultIdentity`` of the vault the agent unlocked: the file it opened (not
    /// whatever is at its path now), or the team vault's location.
    var servedVault: String? {
        if let teamVault { return teamVault }
        lock.lock(); defer { lock.unlock() }
        return files?.opened.map { "file:\($0.device):\($0.inode)" }
    }

    var isLocked: Bool {
        lock.lock(); defer { lock.unlock() }
        return manager == nil
    }

    /// The manager for one request, keys made accessible.
    /// - Throws: ``ServiceError`` `locked` (never a stale key) or `vault_changed`.
    ///   `activity` false (the agent's own renewals) leaves the idle clock alone.
    func begin(activity: Bool = true) throws(ServiceError) -> KeyManager {
        lock.lock(); defer { lock.unlock() }
        guard let manager else { throw ServiceError(.locked, "the agent is locked (\(lockReason ?? "locked")); unlock it with 'kisvault unlock'") }
        if let problem = vaultProblemLocked() {
            lockLocked(reason: problem)
            throw ServiceError(.vaultChanged, "\(problem); the agent locked itself: stop it with 'kisvault agent stop', run 'kisvault doctor', then start it again")
        }
        if active == 0 { manager.vault.unprotectKeys() }
        active += 1
        if activity { lastActivity = now() }
        return manager
    }

    /// Locks the agent if its vault file or write-ahead log is no longer the one it
    /// unlocked (`/v1/status` asks this before it answers, so it never says "unlocked"
    /// about a deleted vault).
    func checkVault() {
        lock.lock(); defer { lock.unlock() }
        guard manager != nil, let problem = vaultProblemLocked() else { return }
        lockLocked(reason: problem)
    }

    /// What is wrong with the files the agent serves, or nil while they are the ones it opened.
    /// A team vault has no file to be replaced (the storage gives no watch): the database
    /// is the vault.
    private func vaultProblemLocked() -> String? {
        files?.problem()
    }

    func end(_ manager: KeyManager, activity: Bool = true) {
        lock.lock(); defer { lock.unlock() }
        if activity { lastActivity = now() }
        guard manager === self.manager else {
            // A request that outlived a lock: the last one closes the locked vault.
            let id = ObjectIdentifier(manager)
            guard var entry = draining[id] else { return }
            entry.active -= 1
            if entry.active > 0 { draining[id] = entry; return }
            draining[id] = nil
            manager.vault.vault.close()
            logger.notice("locked: the last running request has ended, the vault is closed")
            return
        }
        active -= 1
        if active == 0 { manager.vault.protectKeys() }
    }

    /// Registers a bulk run, to be stopped by a lock: its requests in flight finish and are
    /// stored, the accounts not yet started are reported not attempted.
    func track(_ progress: BulkProgress) {
        lock.lock(); defer { lock.unlock() }
        if manager == nil { progress.requestStop(reason: "the agent was locked (\(lockReason ?? "locked"))") }
        runs[ObjectIdentifier(progress)] = progress
    }

    func untrack(_ progress: BulkProgress) {
        lock.lock(); defer { lock.unlock() }
        runs[ObjectIdentifier(progress)] = nil
    }

    /// Forgets the keys; running requests finish with the references they hold.
    func lockNow(reason: String) {
        lock.lock(); defer { lock.unlock() }
        lockLocked(reason: reason)
    }

    private func lockLocked(reason: String) {
        guard let manager else { return }
        // Mapped again: the head is proven with the audit key, and sodium_free needs them.
        if active == 0 { manager.vault.unprotectKeys() }
        if let history { manager.vault.rememberHead(history) }
        for run in runs.values { run.requestStop(reason: "the agent was locked (\(reason))") }
        if active == 0 {
            manager.vault.vault.close()
        } else {
            // Never closed under a running request (a bulk run's commits, a lease being
            // given back): the last one to end closes it.
            draining[ObjectIdentifier(manager)] = (manager, active)
            active = 0
        }
        self.manager = nil
        lockReason = reason
        logger.notice("locked", metadata: ["reason": "\(reason)"])
    }

    /// Unlocks a locked agent again with `passphrase`: the vault at the agent's path is
    /// opened anew (its file and write-ahead log become the ones watched), the idle clock
    /// restarts, the maximum lifetime does not. An unlocked agent is left as it is.
    /// - Throws: ``VaultError`` (a wrong passphrase is `wrongPassphrase`).
    func unlock(passphrase: SecureBytes, keyslot: String?) throws {
        lock.lock()
        let alreadyUnlocked = manager != nil
        lock.unlock()
        guard !alreadyUnlocked else { return }
        // Opened and unlocked outside the lock: Argon2id takes a while, and status must
        // still answer meanwhile.
        let vault = try Vault.open(path: vaultPath, mode: .readWrite)
        let unlocked: UnlockedVault
        do {
            unlocked = try vault.unlock(passphrase: passphrase, keyslot: keyslot)
            if let history { try unlocked.checkHistory(history) }
        } catch {
            vault.close()
            throw error
        }
        let fresh = KeyManager(vault: unlocked, client: client, configuration: managerConfiguration)
        lock.lock(); defer { lock.unlock() }
        guard manager == nil else { unlocked.vault.close(); return }
        files = fresh.vault.vault.storage.fileWatch()
        fresh.vault.protectKeys()
        manager = fresh
        lockReason = nil
        lastActivity = now()
        logger.notice("unlocked again")
    }

    /// Remembers the vault's head now (after a renewal pass wrote to it).
    func rememberHead() {
        guard let history, let manager = try? begin(activity: false) else { return }
        defer { end(manager, activity: false) }
        manager.vault.rememberHead(history)
    }

    /// Locks when idle or past the maximum lifetime.
    func tick() {
        lock.lock(); defer { lock.unlock() }
        guard manager != nil else { return }
        let now = self.now()
        if let idleLock, active == 0, now.timeIntervalSince(lastActivity) >= idleLock {
            lockLocked(reason: "idle for \(Int(idleLock)) s")
        } else if let maxLock, now.timeIntervalSince(started) >= maxLock {
            lockLocked(reason: "unlocked for \(Int(maxLock)) s, the maximum")
        }
    }
}
