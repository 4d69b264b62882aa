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
    /// KIS issues one token a minute per appkey (``KISFacts/tokenIssueInterval``; tests
    /// shorten it).
    public var tokenInterval: TimeInterval = KISFacts.tokenIssueInterval
    /// How often a process waiting for another's issuance looks again.
    public var pollInterval: TimeInterval = 0.05
    /// When false, a token request inside the minute fails with the time to wait.
    public var waitForTokenInterval = true
    /// This machine's clock (tests shift it together with the mock's). Decisions use it
    /// corrected by the vault's clock (``KeyManager/now()``).
    public var now: @Sendable () -> Date = { MachineClock.now() }
    /// Words added to the detail of every issuance's audit row ("renewed by the agent").
    public var auditNote: String?
    /// Sees every answer KIS gave to an issuance, single or bulk, stored or not (the
    /// agent's metrics): the kind, and nil when KIS issued the credential, else the
    /// failure's KIS code (its kind when KIS gave none), as the audit row names it.
    public var issuanceObserver: (@Sendable (CredentialKind, _ failure: String?) -> Void)?

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
    let owner: LeaseOwner
    /// Single flight inside this process: the lease works between processes, and this
    /// keeps one manager's concurrent callers (the agent's clients) from racing each other.
    let inFlight: KeyedGate
    let logger: Logger

    public convenience init(vault: UnlockedVault, client: KISClient, configuration: KeyManagerConfiguration = KeyManagerConfiguration(),
                            logger: Logger = Logger(label: "kisvault.manager")) {
        self.init(vault: vault, client: client, configuration: configuration, logger: logger, owner: .current(), inFlight: KeyedGate())
    }

    private init(vault: UnlockedVault, client: KISClient, configuration: KeyManagerConfiguration, logger: Logger,
                 owner: LeaseOwner, inFlight: KeyedGate) {
        self.vault = vault
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.owner = owner
        self.inFlight = inFlight
    }

    /// This manager with another KIS client (a bulk run's, with its own request rate):
    /// the same lease owner and in-process gate, so the two never issue for one account
    /// at once. The caller shuts `client` down.
    public func using(client: KISClient) -> KeyManager {
        KeyManager(vault: vault, client: client, configuration: configuration, logger: logger, owner: owner, inFlight: inFlight)
    }

    /// This manager with `note` in the audit rows of what it issues: the same lease owner,
    /// gate and client.
    public func noting(_ note: String) -> KeyManager {
        var configuration = configuration
        configuration.auditNote = note
        return KeyManager(vault: vault, client: client, configuration: configuration, logger: logger, owner: owner, inFlight: inFlight)
    }

    /// The time every decision is made by: the machine's clock, corrected to the vault's
    /// (a team vault's server), so that machines whose clocks differ agree on leases, the
    /// token minute and what is fresh.
    func now() -> Date { configuration.now().addingTimeInterval(vault.vault.storage.clockOffset()) }

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
        let started = now()
        let issued = try await obtain(account: account, kind: kind) { times, _ in times.issuedAt >= started }
        if revokeOld && kind == .token {
            try await revokePrevious(account: account, current: issued.value)
        }
        return issued
    }

    /// Revokes the stored access token at KIS and forgets it.
    /// A program found `dead` refused by KIS (EGW00121/EGW00123). If it is still the stored
    /// token it is dropped (audited) in one transaction, then the token valid for `minTTL`
    /// is returned: a new one, issued under the usual single flight, so that ten programs
    /// reporting the same dead token cause one issuance and all get the new token.
    /// - Returns: whether this call dropped the stored token, and the token to use now.
    /// - Throws: ``KeyManagerError``, ``VaultError``.
    public func invalidate(account: String, token dead: SecureBytes, minTTL: TimeInterval) async throws -> (dropped: Bool, IssuedCredential) {
        let dropped = try vault.withIssuance(account: account, kind: .token) { tx -> Bool in
            guard try tx.discardCurrent(ifItIs: dead) else { return false }
            try tx.audit(action: "token.invalidate", detail: "reported dead by a program")
            return true
        }
        return (dropped, try await get(account: account, kind: .token, minTTL: minTTL))
    }

    /// What revoking a token came to.
    public enum RevokeOutcome: Sendable, Equatable {
        /// KIS revoked it.
        case revoked
        /// KIS no longer knew it (EGW00121: expired, or revoked elsewhere); it was forgotten.
        case alreadyInvalid
    }

    @discardableResult
    public func revoke(account: String) async throws -> RevokeOutcome {
        guard let (token, _) = try vault.openCredential(account: account, kind: .token) else {
            throw KeyManagerError.nothingStored(account: account, kind: .token)
        }
        return try await revokeAtKIS(account: account, token: token, slot: .current)
    }

    /// Revokes the previous token of `account` at KIS and forgets it, unless it is the same
    /// token as `current`.
    public func revokePrevious(account: String, current: SecureBytes) async throws {
        guard let (previous, _) = try vault.openCredential(account: account, kind: .token, slot: .previous) else { return }
        // KIS hands back the same token for six hours; revoking "the old one" would then
        // revoke the one just stored.
        if previous.constantTimeEquals(current) {
            _ = try vault.withIssuance(account: account, kind: .token) { tx in try tx.discard(slot: .previous) }
            return
        }
        try await revokeAtKIS(account: account, token: previous, slot: .previous)
    }

    @discardableResult
    func revokeAtKIS(account: String, token: SecureBytes, slot: CredentialSlot) async throws -> RevokeOutcome {
        let snapshot = try vault.vault.issuanceSnapshot(account: account, kind: .token)
        let secrets = try vault.secrets(of: account)
        do {
            try await client.revoke(environment: KISEnvironment(snapshot.environment), appkey: secrets.appkey.utf8String(),
                                    secret: secrets.appsecret.utf8String(), token: token.utf8String())
        } catch let error where error.kind == .tokenInvalid {
            // Already unknown to KIS (expired or revoked elsewhere): forgetting it is right.
            try vault.withIssuance(account: account, kind: .token) { tx in
                try tx.discard(slot: slot)
                try tx.audit(action: "token.revoke", detail: "\(slot.rawValue): already invalid (\(error.code ?? "EGW00121"))")
            }
            return .alreadyInvalid
        } catch {
            try vault.withIssuance(account: account, kind: .token) { tx in
                try tx.audit(action: "token.revoke", outcome: .failed, detail: "\(slot.rawValue): \(error.code ?? "error")")
            }
            throw KeyManagerError.kis(account: account, error)
        }
        try vault.withIssuance(account: account, kind: .token) { tx in
            try tx.discard(slot: slot)
            try tx.audit(action: "token.revoke", detail: slot.rawValue)
        }
        return .revoked
    }

    /// What one locked look at the issuance state decided.
    enum Step {
        case cached
        case waitForOther
        case waitForInterval(until: Date)
        case rejected(code: String, message: String)
        /// The account is gone (removed while a bulk run had it in hand).
        case removed
        case request(Claim)
    }

    /// A claimed issuance: the state it was claimed in and the sealed appkey and appsecret
    /// read in the same transaction, so sending the request needs no further read.
    struct Claim: Sendable {
        let snapshot: IssuanceSnapshot
        let app: SealedAppCredentials
    }

    /// The single-flight core: returns a stored credential satisfying `isAcceptable`, or
    /// claims the lease, issues one from KIS, stores it, and returns it.
    /// With `stop`, a bulk run's: a stop asked while the account waits ends the wait, and
    /// the account is ``KeyManagerError/interrupted(account:reason:)``, never sent afterwards.
    func obtain(account: String, kind: CredentialKind, stop: BulkProgress? = nil, isAcceptable: (CredentialTimes, Date) -> Bool) async throws -> IssuedCredential {
        // The common case needs no gate: a fresh stored credential.
        if let (value, times) = try vault.openCredential(account: account, kind: kind), accepts(times, now(), isAcceptable) {
            return IssuedCredential(value: value, times: times, fromCache: true)
        }
        let key = "\(kind.rawValue)/\(account)"
        let waited = await inFlight.acquire(key)
        do {
            // Not waited: nothing of this process changed the account since the look above,
            // and another process's change is what the write transaction sees anyway.
            let result = try await obtainLocked(account: account, kind: kind, stop: stop, looked: !waited, isAcceptable: isAcceptable)
            await inFlight.release(key)
            return result
        } catch {
            await inFlight.release(key)
            throw error
        }
    }

    /// The loop behind the gate. `looked`: the caller has just found no acceptable stored
    /// credential, so the first pass goes straight to the write transaction (which decides
    /// on the state it reads itself); later passes, after a wait, look with reads first.
    func obtainLocked(account: String, kind: CredentialKind, stop: BulkProgress?, looked: Bool = false,
                      isAcceptable: (CredentialTimes, Date) -> Bool) async throws -> IssuedCredential {
        let waitLimit = now().addingTimeInterval(configuration.leaseDuration + 30)
        var retriedRateLimit = false
        var firstPass = looked
        while true {
            let now = self.now()
            if !firstPass {
                if let (value, times) = try vault.openCredential(account: account, kind: kind), accepts(times, now, isAcceptable) {
                    return IssuedCredential(value: value, times: times, fromCache: true)
                }
                // Another process's issuance in flight: look again with a read, not the write
                // lock (thirty waiters polling with write transactions would queue the holder's
                // own commit behind them).
                let (peek, holderAlive) = try vault.vault.leaseState(account: account, kind: kind)
                if let holder = peek.leaseOwner, holder != owner.text, let until = peek.leaseExpiresAt, until > now,
                   peek.current.map({ !accepts($0, now, isAcceptable) }) ?? true, LeaseOwner.isAlive(holder), holderAlive != false {
                    guard self.now() < waitLimit else {
                        throw KeyManagerError.leaseTimeout(account: account, seconds: Int(configuration.leaseDuration + 30))
                    }
                    try await pause(configuration.pollInterval, account: account, stop: stop)
                    continue
                }
            }
            firstPass = false
            let step = try vault.withIssuance(account: account, kind: kind) { tx -> Step in
                try decide(tx, kind: kind, now: now, isAcceptable: isAcceptable)
            }
            let claim: Claim
            switch step {
            case .cached:
                continue
            case .rejected(let code, let message):
                throw KeyManagerError.previouslyRejected(account: account, code: code, message: message)
            case .removed:
                throw VaultError.accountNotFound(name: account)
            case .waitForOther:
                guard self.now() < waitLimit else {
                    throw KeyManagerError.leaseTimeout(account: account, seconds: Int(configuration.leaseDuration + 30))
                }
                try await pause(configuration.pollInterval, account: account, stop: stop)
                continue
            case .waitForInterval(let until):
                let seconds = until.timeIntervalSince(now)
                guard configuration.waitForTokenInterval else {
                    throw KeyManagerError.mustWait(account: account, seconds: Int(seconds.rounded(.up)))
                }
                logger.notice("'\(account)': waiting \(Int(seconds.rounded(.up))) s for KIS's once-a-minute token limit (a token was issued for this appkey less than a minute ago)")
                try await pause(max(0.01, seconds), account: account, stop: stop)
                continue
            case .request(let claimed):
                claim = claimed
            }
            do {
                return try await issue(claim)
            } catch KeyManagerError.kis(_, let error) where !retriedRateLimit && error.isRateLimited {
                // KIS refused despite our own clock (another client used the appkey): wait
                // out the minute once, then try again. Without waiting, the error says so.
                retriedRateLimit = true
                guard configuration.waitForTokenInterval else { throw KeyManagerError.kis(account: account, error) }
                try await pause(configuration.tokenInterval, account: account, stop: stop)
            }
        }
    }

    func decide(_ tx: IssuanceTransaction, kind: CredentialKind, now: Date, isAcceptable: (CredentialTimes, Date) -> Bool) throws -> Step {
        let state = tx.snapshot
        if let current = state.current, accepts(current, now, isAcceptable) { return .cached }
        if let code = state.rejectedCode { return .rejected(code: code, message: state.rejectedMessage ?? "") }
        if let holder = state.leaseOwner, holder != owner.text, let until = state.leaseExpiresAt, until > now,
           LeaseOwner.isAlive(holder), try tx.leaseHolderAlive(holder) != false {
            // A holder known dead (a process of this host that is gone, or, on a team
            // vault, one whose database session ended) is taken over at once.
            return .waitForOther
        }
        // KIS's minute since the last request; a request recorded more than a minute ahead
        // of the clock is not believed (it would stall the account for as long as it is
        // ahead), and no wait is longer than the minute itself.
        let interval = configuration.tokenInterval
        if kind == .token, let last = state.lastRequestAt, now.timeIntervalSince(last) < interval, last.timeIntervalSince(now) < interval {
            return .waitForInterval(until: min(last.addingTimeInterval(interval), now.addingTimeInterval(interval)))
        }
        try tx.claim(owner: owner.text, until: now.addingTimeInterval(configuration.leaseDuration), requestAt: now)
        return .request(Claim(snapshot: tx.snapshot, app: try tx.sealedAppCredentials()))
    }

    /// Waits `seconds`, in slices short enough that a stop asked of a bulk run (Ctrl-C,
    /// SIGTERM) ends the wait at once: what still waits is not attempted.
    /// - Throws: ``KeyManagerError/interrupted(account:reason:)`` when stopped or cancelled.
    func pause(_ seconds: TimeInterval, account: String, stop: BulkProgress?) async throws {
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        do {
            while ContinuousClock.now < end {
                if let stop, stop.isStopRequested { throw KeyManagerError.interrupted(account: account, reason: stop.stopReason) }
                try await Task.sleep(for: min(.milliseconds(100), ContinuousClock.now.duration(to: end)))
            }
        } catch is CancellationError {
            throw KeyManagerError.interrupted(account: account, reason: "the run was cancelled")
        }
    }

    /// `isAcceptable`, for times that are believable at `now` (``CredentialTimes/isBelievable(at:longest:)``).
    func accepts(_ times: CredentialTimes, _ now: Date, _ isAcceptable: (CredentialTimes, Date) -> Bool) -> Bool {
        times.isBelievable(at: now, longest: KISFacts.longestTokenLifetime) && isAcceptable(times, now)
    }

    /// Sends the request for a claimed account and stores the result (or the failure).
    func issue(_ claim: Claim) async throws -> IssuedCredential {
        try record(claim, result: try await requestReleasingOnError(claim))
    }

    /// ``request(_:)``, releasing the claimed lease when the account's own data cannot be
    /// read, so that no one waits a lease duration for a request never sent.
    func requestReleasingOnError(_ claim: Claim) async throws -> RequestResult {
        do {
            return try await request(claim)
        } catch {
            _ = try? vault.withClaimed([claim.snapshot]) { tx in try tx.releaseLease(owner: owner.text) }
            throw error
        }
    }

    /// The outcome of one request to KIS. An issued credential is the text KIS sent, on
    /// its way to being sealed (the JSON parser already holds it in ordinary memory; a
    /// guarded copy is made only for a caller that keeps it).
    enum RequestResult: Sendable {
        case issued(String, CredentialTimes)
        case failed(KISError)
    }

    /// Opens the claim's appkey and appsecret and asks KIS. A failure to open them is the
    /// vault's (``VaultError``, say a field that fails to authenticate), never dressed up as
    /// an answer from KIS.
    func request(_ claim: Claim) async throws(VaultError) -> RequestResult {
        let (appkey, secret) = try vault.openAppCredentials(claim.app)
        let environment = KISEnvironment(claim.app.environment)
        let result: RequestResult
        do {
            switch claim.snapshot.kind {
            case .approval:
                // The lifetime is the client's, on the manager's clock, computed once.
                let key = try await client.approvalKey(environment: environment, appkey: appkey, secret: secret, now: { self.now() })
                result = .issued(key.key, CredentialTimes(issuedAt: key.issuedAt, expiresAt: key.expiresAt))
            case .token:
                let token = try await client.accessToken(environment: environment, appkey: appkey, secret: secret, now: { self.now() })
                result = .issued(token.token, CredentialTimes(issuedAt: token.issuedAt, expiresAt: token.expiresAt))
            }
        } catch {
            result = .failed(error)
        }
        if let observe = configuration.issuanceObserver {
            if case .failed(let error) = result { observe(claim.snapshot.kind, Self.auditCode(error)) } else { observe(claim.snapshot.kind, nil) }
        }
        return result
    }

    /// Seals an issued credential for the claimed account, outside any transaction.
    func seal(_ text: String, for claim: Claim) -> SealedCredential {
        var text = text
        return text.withUTF8 { vault.sealCredential(UnsafeRawBufferPointer($0), for: claim.snapshot) }
    }

    /// Stores a result, releases the lease, and audits, in one transaction.
    /// - Throws: ``KeyManagerError/kis(account:_:)`` for a failure;
    ///   ``VaultError/accountNotFound(name:)`` when the account was removed meanwhile.
    func record(_ claim: Claim, result: RequestResult) throws -> IssuedCredential {
        let account = claim.snapshot.account
        switch result {
        case .issued(let text, let times):
            let sealed = seal(text, for: claim)
            let stored = try vault.withClaimed([claim.snapshot]) { tx in try store(tx, sealed, times) }
            guard stored == 1 else { throw VaultError.accountNotFound(name: account) }
            return IssuedCredential(value: SecureBytes(utf8: text), times: times, fromCache: false)
        case .failed(let error):
            try vault.withClaimed([claim.snapshot]) { tx in try fail(tx, error) }
            throw KeyManagerError.kis(account: account, error)
        }
    }

    func store(_ tx: IssuanceTransaction, _ sealed: SealedCredential, _ times: CredentialTimes) throws {
        try tx.store(sealed, times: times, releasingLeaseOf: owner.text)
        let note = configuration.auditNote.map { " " + $0 } ?? ""
        try tx.audit(action: "\(tx.snapshot.kind.rawValue).issue", detail: "expires=\(Timestamp.string(times.expiresAt))" + note)
    }

    func fail(_ tx: IssuanceTransaction, _ error: KISError) throws {
        try tx.releaseLease(owner: owner.text)
        if error.kind == .credentialsRejected {
            try tx.markRejected(code: error.code, message: error.message)
        } else {
            try tx.recordError(error.description)
        }
        let note = configuration.auditNote.map { " " + $0 } ?? ""
        try tx.audit(action: "\(tx.snapshot.kind.rawValue).issue", outcome: .failed, detail: Self.auditCode(error) + note)
    }

    /// How a failed issuance is named in its audit row and the metrics: KIS's code, else
    /// the failure's kind.
    static func auditCode(_ error: KISError) -> String { error.code ?? "\(error.kind)" }
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

    /// Takes the key's turn; returns whether it had to wait for another holder's.
    @discardableResult
    func acquire(_ key: String) async -> Bool {
        if !held.contains(key) {
            held.insert(key)
            return false
        }
        await withCheckedContinuation { waiters[key, default: []].append($0) }
        return true
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
