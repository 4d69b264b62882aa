import Foundation
import KISAPI
import Logging
import VaultCrypto
import VaultStore

/// Settings of a ``KeyManager``.
public struct KeyManagerConfiguration: Sendable {
    /// How long an issuance lease is held before others may take it over (a killed
    /// process's lease on this host is taken over at once). Longer than one KIS request
    /// with all its retries.
    public var leaseDuration: TimeInterval = 60
    /// KIS issues one token a minute per appkey.
    public var tokenInterval: TimeInterval = 60
    /// How often a process waiting for another's issuance looks again.
    public var pollInterval: TimeInterval = 0.05
    /// When false, a token request inside the minute fails with the time to wait.
    public var waitForTokenInterval = true
    /// The manager's clock (tests shift it together with the mock's).
    public var now: @Sendable () -> Date = { Date() }

    public init() {}
}

/// A credential handed out by the manager.
public struct IssuedCredential: Sendable {
    public var value: SecureBytes
    public var times: CredentialTimes
    /// True when it came from the vault without a request to KIS.
    public var fromCache: Bool

    public init(value: SecureBytes, times: CredentialTimes, fromCache: Bool) {
        self.value = value
        self.times = times
        self.fromCache = fromCache
    }
}

/// The policy layer: hands out approval keys and tokens from the vault when they are fresh
/// enough, issues them from KIS only when needed, once across every process using the
/// vault, and records every issuance in the audit log.
public final class KeyManager: Sendable {
    public let vault: UnlockedVault
    public let client: KISClient
    public let configuration: KeyManagerConfiguration
    let owner = LeaseOwner.current()
    /// Single flight inside this process: the lease works between processes, and this
    /// keeps one manager's concurrent callers (the agent's clients) from racing each other.
    let inFlight = KeyedGate()
    let logger: Logger

    public init(vault: UnlockedVault, client: KISClient, configuration: KeyManagerConfiguration = KeyManagerConfiguration(),
                logger: Logger = Logger(label: "kisvault.manager")) {
        self.vault = vault
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// A credential valid for at least `minTTL` seconds: the stored one, or a new one.
    /// - Throws: ``KeyManagerError``, ``VaultError``.
    public func get(account: String, kind: CredentialKind, minTTL: TimeInterval) async throws -> IssuedCredential {
        try await obtain(account: account, kind: kind) { times, now in times.expiresAt.timeIntervalSince(now) >= minTTL }
    }

    /// A credential issued now, even when the stored one is fresh. When another process
    /// rotates the same account at the same moment, its result is accepted rather than
    /// issuing twice. With `revokeOld` (tokens), the previous token is revoked at KIS once
    /// the new one is stored.
    public func rotate(account: String, kind: CredentialKind, revokeOld: Bool = false) async throws -> IssuedCredential {
        let started = configuration.now()
        let issued = try await obtain(account: account, kind: kind) { times, _ in times.issuedAt >= started }
        if revokeOld && kind == .token {
            try await revokePrevious(account: account, current: issued.value)
        }
        return issued
    }

    /// Revokes the stored access token at KIS and forgets it.
    public func revoke(account: String) async throws {
        guard let (token, _) = try vault.openCredential(account: account, kind: .token) else {
            throw KeyManagerError.nothingStored(account: account, kind: .token)
        }
        try await revokeAtKIS(account: account, token: token, slot: "current")
    }

    /// Revokes the previous token of `account` at KIS and forgets it, unless it is the same
    /// token as `current`.
    public func revokePrevious(account: String, current: SecureBytes) async throws {
        guard let (previous, _) = try vault.openCredential(account: account, kind: .token, slot: "previous") else { return }
        // KIS hands back the same token for six hours; revoking "the old one" would then
        // revoke the one just stored.
        if previous.constantTimeEquals(current) {
            _ = try vault.withIssuance(account: account, kind: .token) { tx in try tx.discard(slot: "previous") }
            return
        }
        try await revokeAtKIS(account: account, token: previous, slot: "previous")
    }

    func revokeAtKIS(account: String, token: SecureBytes, slot: String) async throws {
        let snapshot = try vault.vault.issuanceSnapshot(account: account, kind: .token)
        let secrets = try vault.secrets(of: account)
        do {
            try await client.revoke(environment: KISEnvironment(snapshot.environment), appkey: secrets.appkey.utf8String(),
                                    secret: secrets.appsecret.utf8String(), token: token.utf8String())
        } catch let error where error.kind == .tokenInvalid {
            // Already unknown to KIS (expired or revoked elsewhere): forgetting it is right.
        } catch {
            try vault.withIssuance(account: account, kind: .token) { tx in
                try tx.audit(action: "token.revoke", outcome: .failed, detail: "\(slot): \(error.code ?? "error")")
            }
            throw KeyManagerError.kis(account: account, error)
        }
        try vault.withIssuance(account: account, kind: .token) { tx in
            try tx.discard(slot: slot)
            try tx.audit(action: "token.revoke", detail: slot)
        }
    }

    /// What one locked look at the issuance state decided.
    enum Step {
        case cached
        case waitForOther
        case waitForInterval(until: Date)
        case rejected(code: String, message: String)
        case request
    }

    /// The single-flight core: returns a stored credential satisfying `isAcceptable`, or
    /// claims the lease, issues one from KIS, stores it, and returns it.
    func obtain(account: String, kind: CredentialKind, isAcceptable: (CredentialTimes, Date) -> Bool) async throws -> IssuedCredential {
        // The common case needs no gate: a fresh stored credential.
        if let (value, times) = try vault.openCredential(account: account, kind: kind), isAcceptable(times, configuration.now()) {
            return IssuedCredential(value: value, times: times, fromCache: true)
        }
        let key = "\(kind.rawValue)/\(account)"
        await inFlight.acquire(key)
        do {
            let result = try await obtainLocked(account: account, kind: kind, isAcceptable: isAcceptable)
            await inFlight.release(key)
            return result
        } catch {
            await inFlight.release(key)
            throw error
        }
    }

    func obtainLocked(account: String, kind: CredentialKind, isAcceptable: (CredentialTimes, Date) -> Bool) async throws -> IssuedCredential {
        let waitLimit = configuration.now().addingTimeInterval(configuration.leaseDuration + 30)
        var retriedRateLimit = false
        while true {
            let now = configuration.now()
            if let (value, times) = try vault.openCredential(account: account, kind: kind), isAcceptable(times, now) {
                return IssuedCredential(value: value, times: times, fromCache: true)
            }
            let step = try vault.withIssuance(account: account, kind: kind) { tx -> Step in
                decide(tx, kind: kind, now: now, isAcceptable: isAcceptable)
            }
            switch step {
            case .cached:
                continue
            case .rejected(let code, let message):
                throw KeyManagerError.previouslyRejected(account: account, code: code, message: message)
            case .waitForOther:
                guard configuration.now() < waitLimit else {
                    throw KeyManagerError.leaseTimeout(account: account, seconds: Int(configuration.leaseDuration + 30))
                }
                try await Task.sleep(for: .seconds(configuration.pollInterval))
                continue
            case .waitForInterval(let until):
                let seconds = until.timeIntervalSince(now)
                guard configuration.waitForTokenInterval else {
                    throw KeyManagerError.mustWait(account: account, seconds: Int(seconds.rounded(.up)))
                }
                logger.info("waiting for KIS's once-a-minute token limit", metadata: ["account": "\(account)", "seconds": "\(Int(seconds))"])
                try await Task.sleep(for: .seconds(max(0.01, seconds)))
                continue
            case .request:
                break
            }
            do {
                return try await issue(account: account, kind: kind)
            } catch KeyManagerError.kis(_, let error) where !retriedRateLimit && error.isRateLimited {
                // KIS refused despite our own clock (another client used the appkey): wait
                // out the minute once, then try again.
                retriedRateLimit = true
                guard configuration.waitForTokenInterval else {
                    throw KeyManagerError.mustWait(account: account, seconds: Int(configuration.tokenInterval))
                }
                try await Task.sleep(for: .seconds(configuration.tokenInterval))
            }
        }
    }

    func decide(_ tx: IssuanceTransaction, kind: CredentialKind, now: Date, isAcceptable: (CredentialTimes, Date) -> Bool) -> Step {
        let state = tx.snapshot
        if let current = state.current, isAcceptable(current, now) { return .cached }
        if let code = state.rejectedCode { return .rejected(code: code, message: state.rejectedMessage ?? "") }
        if let holder = state.leaseOwner, holder != owner.text, let until = state.leaseExpiresAt, until > now,
           LeaseOwner.isAlive(holder) {
            return .waitForOther
        }
        if kind == .token, let last = state.lastRequestAt, now.timeIntervalSince(last) < configuration.tokenInterval {
            return .waitForInterval(until: last.addingTimeInterval(configuration.tokenInterval))
        }
        do {
            try tx.claimLease(owner: owner.text, until: now.addingTimeInterval(configuration.leaseDuration))
            // Recorded before the request: if we die after KIS answered, the minute still counts.
            try tx.recordRequest(at: now)
        } catch {
            return .waitForOther
        }
        return .request
    }

    /// Sends the request for a claimed account and stores the result (or the failure).
    func issue(account: String, kind: CredentialKind) async throws -> IssuedCredential {
        return try record(account: account, kind: kind, result: try await requestReleasingOnError(account: account, kind: kind))
    }

    /// ``request(account:kind:)``, releasing the claimed lease when the account's own data
    /// cannot be read, so that no one waits a lease duration for a request never sent.
    func requestReleasingOnError(account: String, kind: CredentialKind) async throws -> RequestResult {
        do {
            return try await request(account: account, kind: kind)
        } catch {
            _ = try? vault.withIssuance(account: account, kind: kind) { tx in try tx.releaseLease(owner: owner.text) }
            throw error
        }
    }

    /// The outcome of one request to KIS.
    enum RequestResult: Sendable {
        case issued(SecureBytes, CredentialTimes)
        case failed(KISError)
    }

    /// Reads the account's appkey and appsecret and asks KIS. A failure to read them is the
    /// vault's (``VaultError``, say a field that fails to authenticate), never dressed up as
    /// an answer from KIS.
    func request(account: String, kind: CredentialKind) async throws(VaultError) -> RequestResult {
        let (environment, appkey, secret) = try vault.appCredentials(of: account)
        let kisEnvironment = KISEnvironment(environment)
        do {
            switch kind {
            case .approval:
                let key = try await client.approvalKey(environment: kisEnvironment, appkey: appkey, secret: secret)
                let issued = configuration.now()
                return .issued(SecureBytes(utf8: key.key), CredentialTimes(issuedAt: issued, expiresAt: issued.addingTimeInterval(86_400)))
            case .token:
                let token = try await client.accessToken(environment: kisEnvironment, appkey: appkey, secret: secret)
                return .issued(SecureBytes(utf8: token.token), CredentialTimes(issuedAt: configuration.now(), expiresAt: token.expiresAt))
            }
        } catch {
            return .failed(error)
        }
    }

    /// Stores a result, releases the lease, and audits, in one transaction.
    func record(account: String, kind: CredentialKind, result: RequestResult) throws -> IssuedCredential {
        switch result {
        case .issued(let value, let times):
            try vault.withIssuance(account: account, kind: kind) { tx in try store(tx, value, times) }
            return IssuedCredential(value: value, times: times, fromCache: false)
        case .failed(let error):
            try vault.withIssuance(account: account, kind: kind) { tx in try fail(tx, error) }
            throw KeyManagerError.kis(account: account, error)
        }
    }

    func store(_ tx: IssuanceTransaction, _ value: SecureBytes, _ times: CredentialTimes) throws {
        try tx.store(value, times: times)
        try tx.releaseLease(owner: owner.text)
        try tx.audit(action: "\(tx.snapshot.kind.rawValue).issue", detail: "expires=\(Timestamp.string(times.expiresAt))")
    }

    func fail(_ tx: IssuanceTransaction, _ error: KISError) throws {
        try tx.releaseLease(owner: owner.text)
        if error.kind == .credentialsRejected {
            try tx.markRejected(code: error.code, message: error.message)
        } else {
            try tx.recordError(error.description)
        }
        try tx.audit(action: "\(tx.snapshot.kind.rawValue).issue", outcome: .failed, detail: error.code ?? "\(error.kind)")
    }
}

extension KISEnvironment {
    init(_ environment: AccountEnvironment) {
        self = environment == .real ? .real : .mock
    }
}

/// An async mutex per key: callers with the same key run one at a time, in arrival order.
actor KeyedGate {
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var held: Set<String> = []

    func acquire(_ key: String) async {
        if !held.contains(key) {
            held.insert(key)
            return
        }
        await withCheckedContinuation { waiters[key, default: []].append($0) }
    }

    func release(_ key: String) {
        if var queue = waiters[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[key] = queue.isEmpty ? nil : queue
            next.resume()  // ownership passes to the next waiter
        } else {
            held.remove(key)
        }
    }
}
