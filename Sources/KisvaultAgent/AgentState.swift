import Foundation
import KeyManager
import Logging
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The agent's one piece of shared state: the unlocked vault, or nothing once locked.
///
/// Requests bracket their use of the keys with ``begin()`` and ``end()``; the keys are made
/// accessible while at least one request runs and inaccessible otherwise. Locking drops the
/// manager: its keys are wiped (`sodium_free`) as soon as the last running request ends.
final class AgentState: @unchecked Sendable {
    private let lock = NSLock()
    private var manager: KeyManager?
    private var active = 0
    private var lastActivity = Date()
    private(set) var lockReason: String?
    let started = Date()
    let idleLock: TimeInterval?
    let maxLock: TimeInterval?
    let vaultPath: String
    private let vaultIdentity: (dev_t, ino_t)?
    let logger: Logger

    init(manager: KeyManager, vaultPath: String, idleLock: TimeInterval?, maxLock: TimeInterval?, logger: Logger) {
        self.manager = manager
        self.vaultPath = vaultPath
        self.idleLock = idleLock
        self.maxLock = maxLock
        self.logger = logger
        vaultIdentity = Self.identity(vaultPath)
        manager.vault.protectKeys()
    }

    static func identity(_ path: String) -> (dev_t, ino_t)? {
        var info = stat()
        return stat(path, &info) == 0 ? (info.st_dev, info.st_ino) : nil
    }

    var isLocked: Bool {
        lock.lock(); defer { lock.unlock() }
        return manager == nil
    }

    /// The manager for one request, keys made accessible.
    /// - Throws: ``AgentFailure`` `locked` (never a stale key) or `vault_changed`.
    func begin() throws(AgentFailure) -> KeyManager {
        lock.lock(); defer { lock.unlock() }
        guard let manager else { throw AgentFailure(.locked, "the agent is locked (\(lockReason ?? "locked")); unlock by restarting it: kisvault agent start") }
        if let identity = vaultIdentity, let now = Self.identity(vaultPath), now == identity {
            // still the file we unlocked
        } else {
            lockLocked(reason: "the vault file was replaced or removed")
            throw AgentFailure(.vaultChanged, "the vault file \(vaultPath) was replaced or removed; the agent locked itself: restart it")
        }
        if active == 0 { manager.vault.unprotectKeys() }
        active += 1
        lastActivity = Date()
        return manager
    }

    func end(_ manager: KeyManager) {
        lock.lock(); defer { lock.unlock() }
        active -= 1
        lastActivity = Date()
        if active == 0 && self.manager != nil { manager.vault.protectKeys() }
    }

    /// Forgets the keys; running requests finish with the references they hold.
    func lockNow(reason: String) {
        lock.lock(); defer { lock.unlock() }
        lockLocked(reason: reason)
    }

    private func lockLocked(reason: String) {
        guard let manager else { return }
        if active == 0 { manager.vault.unprotectKeys() }  // sodium_free needs them mapped
        manager.vault.vault.close()
        self.manager = nil
        lockReason = reason
        logger.notice("locked", metadata: ["reason": "\(reason)"])
    }

    /// Locks when idle or past the maximum lifetime.
    func tick() {
        lock.lock(); defer { lock.unlock() }
        guard manager != nil else { return }
        let now = Date()
        if let idleLock, active == 0, now.timeIntervalSince(lastActivity) >= idleLock {
            lockLocked(reason: "idle for \(Int(idleLock)) s")
        } else if let maxLock, now.timeIntervalSince(started) >= maxLock {
            lockLocked(reason: "unlocked for \(Int(maxLock)) s, the maximum")
        }
    }
}

/// An error answer of the agent's API: a stable code, an HTTP status, a message.
struct AgentFailure: Error {
    enum Code: String {
        case locked, notFound = "not_found", badRequest = "bad_request", forbidden
        case kisRejected = "kis_rejected", kisUnavailable = "kis_unavailable"
        case vaultChanged = "vault_changed", vaultError = "vault_error"

        var status: Int {
            switch self {
            case .locked: return 423
            case .notFound: return 404
            case .badRequest: return 400
            case .forbidden: return 403
            case .kisRejected: return 502
            case .kisUnavailable: return 503
            case .vaultChanged: return 409
            case .vaultError: return 500
            }
        }
    }

    var code: Code
    var message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
