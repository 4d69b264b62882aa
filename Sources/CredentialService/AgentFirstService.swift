import Foundation
import VaultCrypto
import VaultStore

/// How a front end unlocks a vault when a secret is first needed: where the passphrase
/// comes from (asked at most once, and only then) and which keyslot to try.
public struct UnlockSource: Sendable {
    public var passphrase: @Sendable () throws -> SecureBytes
    public var keyslot: String?
    /// What this client has seen of its vaults' histories: a vault behind it, or with
    /// another history, is refused at unlock (nil: no such check, as for tests and
    /// tools that are not a user's client).
    public var history: HeadMemory?

    public init(keyslot: String?, history: HeadMemory? = nil, passphrase: @escaping @Sendable () throws -> SecureBytes) {
        self.passphrase = passphrase
        self.keyslot = keyslot
        self.history = history
    }

    /// Unlocks `vault`, then checks its history against what this client saw.
    public func unlock(_ vault: Vault) throws -> UnlockedVault {
        let unlocked = try vault.unlock(passphrase: try passphrase(), keyslot: keyslot)
        if let history { try unlocked.checkHistory(history) }
        return unlocked
    }
}

/// The credential service a front end speaks to, chosen here and nowhere else: a running
/// agent serving this vault for these KIS URLs answers what needs the key (no passphrase
/// asked); where there is none, or it is locked or serves something else, the vault is
/// unlocked in this process. What needs no key (listings, status) is read from the vault
/// directly.
public final class AgentFirstService: CredentialService, @unchecked Sendable {
    /// What the service tells its user, and how.
    public struct Notes: Sendable {
        /// A line the user sees (a socket that is not theirs; a long wait for KIS).
        public var note: @Sendable (String) -> Void
        /// A line for `--verbose` (why the agent did not answer).
        public var debug: @Sendable (String) -> Void
        /// Whether a long wait is worth a line (the user is at a terminal).
        public var waitNotices: Bool

        public init(note: @escaping @Sendable (String) -> Void, debug: @escaping @Sendable (String) -> Void, waitNotices: Bool) {
            self.note = note
            self.debug = debug
            self.waitNotices = waitNotices
        }
    }

    private let local: LocalCredentialService
    private let agent: AgentCredentialService?
    private let notes: Notes
    /// The longest one request to KIS waits (`--timeout`), for the wait notice.
    private let kisTimeout: TimeInterval
    public var kisURLs: KISURLs { local.kisURLs }

    public init(vaultPath: String, settings: LocalCredentialService.Settings, unlock: UnlockSource, notes: Notes) throws {
        kisTimeout = settings.kisTimeout
        self.notes = notes
        var settings = settings
        settings.history = unlock.history
        local = try LocalCredentialService(vaultPath: vaultPath, settings: settings, unlock: { try unlock.unlock($0) })
        agent = AgentCredentialService(vaultPath: vaultPath, kisURLs: local.kisURLs, debug: notes.debug)
    }

    /// Runs `body` with a service, closing it afterwards (the KIS client's connections)
    /// whatever happens.
    public static func with<T>(vaultPath: String, settings: LocalCredentialService.Settings, unlock: UnlockSource, notes: Notes,
                               _ body: (AgentFirstService) async throws -> T) async throws -> T {
        let service = try AgentFirstService(vaultPath: vaultPath, settings: settings, unlock: unlock, notes: notes)
        do {
            let result = try await body(service)
            await service.close()
            return result
        } catch {
            await service.close()
            throw error
        }
    }

    /// The agent's answer when it can give one, else this process's.
    private func keyed<T>(_ viaAgent: (AgentCredentialService) async throws -> T,
                          _ here: (LocalCredentialService) async throws -> T) async throws -> T {
        if let agent {
            do {
                return try await viaAgent(agent)
            } catch let unavailable as AgentUnavailable {
                if unavailable.alarming { notes.note("warning: \(unavailable.reason); unlocking here") }
                else { notes.debug("\(unavailable.reason); unlocking here") }
            }
        }
        return try await here(local)
    }

    public func accounts(tag: String?) async throws -> [AccountInfo] {
        try await local.accounts(tag: tag)
    }

    public func account(named name: String) async throws -> AccountInfo {
        try await local.account(named: name)
    }

    public func status(_ kind: CredentialKind, tag: String?) async throws -> [CredentialStatus] {
        try await local.status(kind, tag: tag)
    }

    public func clock() async throws -> Date {
        try await local.clock()
    }

    public func credential(_ kind: CredentialKind, account: String, minTTL: TimeInterval) async throws -> CredentialAnswer {
        let notice = waitingNotice(account: account)
        defer { notice.cancel() }
        return try await keyed({ try await $0.credential(kind, account: account, minTTL: minTTL) },
                               { try await $0.credential(kind, account: account, minTTL: minTTL) })
    }

    /// One line when an answer takes more than two seconds, saying what is waited for and
    /// for how long at most: silence looked like a hang.
    private func waitingNotice(account: String) -> Task<Void, Never> {
        guard notes.waitNotices else { return Task {} }
        let timeout = Int(kisTimeout), urls = kisURLs, note = notes.note
        return Task {
            guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }
            note("'\(account)': still waiting for KIS (\(urls.real == urls.mock ? urls.real : "\(urls.real) / \(urls.mock)"), at most \(timeout) s per request, --timeout to change; --verbose shows each retry)")
        }
    }

    public func invalidateToken(account: String, deadToken: SecureBytes, minTTL: TimeInterval) async throws -> CredentialAnswer {
        try await keyed({ try await $0.invalidateToken(account: account, deadToken: deadToken, minTTL: minTTL) },
                        { try await $0.invalidateToken(account: account, deadToken: deadToken, minTTL: minTTL) })
    }

    public func revokeToken(account: String) async throws -> RevokeAnswer {
        try await keyed({ try await $0.revokeToken(account: account) }, { try await $0.revokeToken(account: account) })
    }

    public func appCredentials(account: String, purpose: HandOut) async throws -> AppCredentials {
        try await appCredentials(account: account, purpose: purpose, detail: "")
    }

    /// With `detail` for the audit row when unlocked here (the agent writes "via agent").
    public func appCredentials(account: String, purpose: HandOut, detail: String) async throws -> AppCredentials {
        try await keyed({ try await $0.appCredentials(account: account, purpose: purpose) },
                        { try await $0.appCredentials(account: account, purpose: purpose, detail: detail) })
    }

    public func bulk(_ request: BulkRequest, started: @escaping @Sendable (BulkProgress) -> Void) async throws -> [BulkItemResult] {
        // A selection that names a missing account fails before any agent or passphrase.
        if !request.accounts.isEmpty {
            try VaultError.checkNamed(request.accounts, among: Set(try await local.accounts(tag: nil).map(\.name)))
        }
        return try await keyed({ try await $0.bulk(request, started: started) }, { try await $0.bulk(request, started: started) })
    }

    public func close() async {
        await local.close()
    }
}
