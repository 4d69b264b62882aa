import CredentialService
import Foundation
import KisvaultAgent
import VaultStore

/// The credential service a command speaks to, chosen here and nowhere else: a running
/// agent serving this vault file for these KIS URLs answers what needs the key (no
/// passphrase asked); where there is none, or it is locked or serves something else, the
/// vault is unlocked in this process. What needs no key (listings, status) is read from
/// the vault directly.
///
/// Commands use it through ``with(_:_:_:)``, which closes it (the KIS client's
/// connections) on every path.
final class Services: CredentialService, @unchecked Sendable {
    let local: LocalCredentialService
    let agent: AgentCredentialService?
    let options: VaultOptions
    /// The longest one request to KIS waits (`--timeout`).
    let kisTimeout: TimeInterval
    var kisURLs: KISURLs { local.kisURLs }

    /// `manager` is nil for commands that never talk to KIS.
    init(options: VaultOptions, manager: ManagerOptions?) throws {
        self.options = options
        var settings = manager?.settings(busyTimeout: options.busyTimeout) ?? LocalCredentialService.Settings()
        kisTimeout = settings.kisTimeout
        settings.busyTimeout = options.busyTimeout
        let unlock: @Sendable (Vault) throws -> UnlockedVault = { [options] vault in
            try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
        }
        local = try LocalCredentialService(vaultPath: options.path, settings: settings, unlock: unlock)
        let verbose = options.verbose
        agent = AgentCredentialService(vaultPath: options.path, kisURLs: local.kisURLs) { text in
            if verbose { Terminal.note(text) }
        }
    }

    /// Runs `body` with the service, closing it afterwards whatever happens.
    static func with<T>(_ options: VaultOptions, _ manager: ManagerOptions?, _ body: (Services) async throws -> T) async throws -> T {
        let services = try Services(options: options, manager: manager)
        do {
            let result = try await body(services)
            await services.close()
            return result
        } catch {
            await services.close()
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
                if unavailable.alarming { Terminal.note("warning: \(unavailable.reason); unlocking here") }
                else { options.debug("\(unavailable.reason); unlocking here") }
            }
        }
        return try await here(local)
    }

    func accounts(tag: String?) async throws -> [AccountInfo] {
        try await local.accounts(tag: tag)
    }

    func account(named name: String) async throws -> AccountInfo {
        try await local.account(named: name)
    }

    func status(_ kind: CredentialKind, tag: String?) async throws -> [CredentialStatus] {
        try await local.status(kind, tag: tag)
    }

    func clock() async throws -> Date {
        try await local.clock()
    }

    func credential(_ kind: CredentialKind, account: String, minTTL: TimeInterval) async throws -> CredentialAnswer {
        let notice = waitingNotice(account: account)
        defer { notice.cancel() }
        return try await keyed({ try await $0.credential(kind, account: account, minTTL: minTTL) },
                               { try await $0.credential(kind, account: account, minTTL: minTTL) })
    }

    /// On a terminal, one line when an answer takes more than two seconds, saying what is
    /// waited for and for how long at most: silence looked like a hang.
    private func waitingNotice(account: String) -> Task<Void, Never> {
        guard Terminal.isTerminal(2) else { return Task {} }
        let timeout = Int(kisTimeout)
        return Task {
            guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }
            Terminal.note("'\(account)': still waiting for KIS (\(kisURLs.real == kisURLs.mock ? kisURLs.real : "\(kisURLs.real) / \(kisURLs.mock)"), at most \(timeout) s per request, --timeout to change; --verbose shows each retry)")
        }
    }

    func invalidateToken(account: String, deadToken: SecureBytes, minTTL: TimeInterval) async throws -> CredentialAnswer {
        try await keyed({ try await $0.invalidateToken(account: account, deadToken: deadToken, minTTL: minTTL) },
                        { try await $0.invalidateToken(account: account, deadToken: deadToken, minTTL: minTTL) })
    }

    func revokeToken(account: String) async throws -> RevokeAnswer {
        try await keyed({ try await $0.revokeToken(account: account) }, { try await $0.revokeToken(account: account) })
    }

    func appCredentials(account: String, purpose: HandOut) async throws -> AppCredentials {
        try await appCredentials(account: account, purpose: purpose, detail: "")
    }

    /// With `detail` for the audit row when unlocked here (the agent writes "via agent").
    func appCredentials(account: String, purpose: HandOut, detail: String) async throws -> AppCredentials {
        try await keyed({ try await $0.appCredentials(account: account, purpose: purpose) },
                        { try await $0.appCredentials(account: account, purpose: purpose, detail: detail) })
    }

    func bulk(_ request: BulkRequest, started: @escaping @Sendable (BulkProgress) -> Void) async throws -> [BulkItemResult] {
        // A selection that names a missing account fails before any agent or passphrase.
        if !request.accounts.isEmpty {
            let known = Set(try await local.accounts(tag: nil).map(\.name))
            if let missing = request.accounts.first(where: { !known.contains($0) }) { throw VaultError.accountNotFound(name: missing) }
        }
        return try await keyed({ try await $0.bulk(request, started: started) }, { try await $0.bulk(request, started: started) })
    }

    func close() async {
        await local.close()
    }
}
