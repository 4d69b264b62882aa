import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

/// The credential service over a vault this process opens and unlocks itself.
///
/// Lazy in the order a user expects: metadata needs no passphrase; an answer about an
/// account first checks the account exists (so "no such account" comes before any
/// passphrase prompt), then unlocks, once; the KIS client is made only when a request to
/// KIS may be needed, and ``close()`` shuts it down. Every hand-out of an appkey and
/// appsecret writes an audit row first: no row, no hand-out.
///
/// The agent serves its answers from one of these over its unlocked vault
/// (``init(manager:handOutNote:)``), so both paths run the same code.
public final class LocalCredentialService: CredentialService, @unchecked Sendable {
    /// How a service that opens the vault itself behaves.
    public struct Settings: Sendable {
        /// When false, a token request inside KIS's minute fails with the time to wait.
        public var waitForTokenInterval = true
        /// The manager's clock.
        public var now: @Sendable () -> Date = { MachineClock.now() }
        /// Seconds to wait for another writer of the vault.
        public var busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue
        /// The longest one call waits for KIS, retries included (`--timeout`).
        public var kisTimeout: TimeInterval = 30
        /// Where the vault's head is remembered when the service closes, after what it
        /// wrote (``HeadMemory``); nil: nowhere.
        public var history: HeadMemory?

        public init() {}

        public init(busyTimeout: Double) {
            self.busyTimeout = busyTimeout
        }
    }

    public let kisURLs: KISURLs
    private let endpoints: KISEndpoints
    private let settings: Settings
    private let vaultPath: String
    private let unlockVault: (@Sendable (Vault) throws -> UnlockedVault)?
    /// Appended to the audit detail of hand-outs (the agent's "via agent").
    private let handOutNote: String?
    private let ownsClient: Bool

    private let lock = NSLock()
    /// The vault opened read-write (for anything that may write), or read-only (metadata).
    private var writable: Vault?
    private var readOnly: Vault?
    private var base: KeyManager?
    /// The base manager's client, when this service made it.
    private var client: KISClient?

    /// A service over the vault at `vaultPath`; `unlock` is called at most once, when a
    /// secret is first needed (it asks for the passphrase).
    /// - Throws: ``ServiceError`` `bad_request` when the KIS URLs of the environment are refused.
    public init(vaultPath: String, settings: Settings = Settings(),
                unlock: @escaping @Sendable (Vault) throws -> UnlockedVault) throws(ServiceError) {
        do { endpoints = try KISEndpoints.fromEnvironment() } catch { throw ServiceError(.badRequest, error.description) }
        kisURLs = KISURLs(endpoints)
        self.settings = settings
        self.vaultPath = vaultPath
        unlockVault = unlock
        handOutNote = nil
        ownsClient = true
    }

    /// A service over an unlocked manager that someone else owns (the agent's): its client
    /// is not shut down by ``close()``.
    public init(manager: KeyManager, handOutNote: String?) {
        endpoints = manager.client.configuration.endpoints
        kisURLs = KISURLs(endpoints)
        settings = Settings()
        vaultPath = manager.vault.vault.path
        unlockVault = nil
        self.handOutNote = handOutNote
        ownsClient = false
        writable = manager.vault.vault
        base = manager
    }

    // MARK: Metadata

    public func accounts(tag: String?) async throws -> [AccountInfo] {
        try metadataVault().accounts(tag: tag).map(AccountInfo.init)
    }

    public func account(named name: String) async throws -> AccountInfo {
        AccountInfo(try metadataVault().account(named: name))
    }

    public func status(_ kind: CredentialKind, tag: String?) async throws -> [CredentialStatus] {
        try metadataVault().issuanceSnapshots(kind: kind, tag: tag).map(CredentialStatus.init)
    }

    public func clock() async throws -> Date {
        let vault = try metadataVault()
        return settings.now().addingTimeInterval(vault.storage.clockOffset())
    }

    // MARK: Secrets

    public func credential(_ kind: CredentialKind, account: String, minTTL: TimeInterval) async throws -> CredentialAnswer {
        let manager = try manager(checking: account)
        return CredentialAnswer(try await manager.get(account: account, kind: kind, minTTL: minTTL), kind: kind)
    }

    public func invalidateToken(account: String, deadToken: SecureBytes, minTTL: TimeInterval) async throws -> CredentialAnswer {
        let manager = try manager(checking: account)
        let (_, issued) = try await manager.invalidate(account: account, token: deadToken, minTTL: minTTL)
        return CredentialAnswer(issued, kind: .token)
    }

    public func revokeToken(account: String) async throws -> RevokeAnswer {
        let manager = try manager(checking: account)
        let outcome = try await manager.revoke(account: account)
        return RevokeAnswer(revoked: outcome == .revoked, alreadyInvalid: outcome == .alreadyInvalid)
    }

    public func appCredentials(account: String, purpose: HandOut) async throws -> AppCredentials {
        try await appCredentials(account: account, purpose: purpose, detail: "")
    }

    /// ``appCredentials(account:purpose:)`` with words for the audit row's detail (what
    /// `exec` hands out besides: "approval token").
    public func appCredentials(account: String, purpose: HandOut, detail: String) async throws -> AppCredentials {
        let vault = try writableVault()
        let summary = try vault.account(named: account)
        let unlocked = try self.unlocked(vault)
        let secrets = try unlocked.secrets(of: account)
        let words = [detail.isEmpty ? nil : detail, purpose == .api ? "app-credentials" : nil, handOutNote].compactMap { $0 }
        try unlocked.recordAudit(action: purpose.auditAction, account: account, detail: words.joined(separator: " "))
        return AppCredentials(environment: summary.environment, secrets: secrets)
    }

    public func bulk(_ request: BulkRequest, started: @escaping @Sendable (BulkProgress) -> Void) async throws -> [BulkItemResult] {
        if let problem = request.problem { throw ServiceError(.badRequest, problem) }
        let vault = try writableVault()
        let names: [String]
        if !request.accounts.isEmpty {
            try VaultError.checkNamed(request.accounts, among: Set(try vault.accountNames()))
            names = request.accounts
        } else {
            names = try vault.accountNames(tag: request.all ? nil : request.tag)
        }
        // The run's own client: its request rate is the run's.
        var configuration = KISClientConfiguration(endpoints: endpoints)
        configuration.perHostRate = request.rate
        configuration.totalTimeout = request.timeout ?? settings.kisTimeout
        let client = try KISClient(configuration: configuration)
        do {
            let results = try await bulk(names: names, request, manager: try baseManager(vault).using(client: client), started: started)
            await client.shutdown()
            return results
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private func bulk(names: [String], _ request: BulkRequest, manager: KeyManager,
                      started: @Sendable (BulkProgress) -> Void) async throws -> [BulkItemResult] {
        var options = BulkOptions(kind: request.kind, mode: request.mode)
        options.concurrency = request.concurrency
        options.force = request.force
        options.dryRun = request.dryRun
        options.minTTL = request.minTTL
        let progress = BulkProgress(total: names.count)
        started(progress)
        let results = try await manager.bulk(accounts: names, options: options, progress: progress)
        if request.revokeOld && request.kind == .token && !request.dryRun {
            for result in results where result.status == .rotated {
                // A failed revocation of an old token does not undo the rotation; it is
                // audited, and the old token expires on its own.
                if let (current, _) = try? manager.vault.openCredential(account: result.account, kind: .token) {
                    try? await manager.revokePrevious(account: result.account, current: current)
                }
            }
        }
        return results
    }

    public func close() async {
        guard ownsClient else { return }
        if let history = settings.history, let unlocked = lock.withLock({ base?.vault }) { unlocked.rememberHead(history) }
        let (client, vaults) = lock.withLock { () -> (KISClient?, [Vault]) in
            defer { self.client = nil; base = nil; writable = nil; readOnly = nil }
            return (self.client, [writable, readOnly].compactMap { $0 })
        }
        await client?.shutdown()
        for vault in vaults { vault.close() }
    }

    // MARK: Opening, unlocking, the manager

    /// The vault for reads that need no key: the one already open, else opened read-only
    /// (which never writes the file).
    private func metadataVault() throws(VaultError) -> Vault {
        if let open = lock.withLock({ writable ?? readOnly }) { return open }
        let vault = try Vault.open(path: vaultPath, mode: .readOnly, busyTimeout: settings.busyTimeout)
        lock.withLock { readOnly = vault }
        return vault
    }

    private func writableVault() throws(VaultError) -> Vault {
        if let open = lock.withLock({ writable }) { return open }
        let vault = try Vault.open(path: vaultPath, mode: .readWrite, busyTimeout: settings.busyTimeout)
        lock.withLock { writable = vault }
        return vault
    }

    private func unlocked(_ vault: Vault) throws -> UnlockedVault {
        if let base = lock.withLock({ base }) { return base.vault }
        guard let unlockVault else { throw ServiceError(.locked, "the vault is locked") }
        let unlocked = try unlockVault(vault)
        // Made with the manager: a client starts no connection before its first request.
        var configuration = KISClientConfiguration(endpoints: endpoints)
        configuration.totalTimeout = settings.kisTimeout
        let client = try KISClient(configuration: configuration)
        lock.withLock {
            self.client = client
            base = KeyManager(vault: unlocked, client: client, configuration: managerConfiguration)
        }
        return unlocked
    }

    /// The manager for an answer about `account`. Before unlocking, the account is checked
    /// to exist, so that "no such account" comes before any passphrase; once unlocked (the
    /// agent's case) the manager's own read answers that, and no extra read is made.
    private func manager(checking account: String) throws -> KeyManager {
        if let base = lock.withLock({ base }) { return base }
        let vault = try writableVault()
        _ = try vault.account(named: account)
        return try baseManager(vault)
    }

    private func baseManager(_ vault: Vault) throws -> KeyManager {
        if let base = lock.withLock({ base }) { return base }
        _ = try unlocked(vault)
        return lock.withLock { base! }
    }

    private var managerConfiguration: KeyManagerConfiguration {
        var configuration = KeyManagerConfiguration()
        configuration.waitForTokenInterval = settings.waitForTokenInterval
        configuration.now = settings.now
        return configuration
    }
}
