import Foundation
import KISAPI
import VaultCrypto
import VaultStore

/// What a bulk run does for each account.
public enum BulkMode: String, Sendable, Codable {
    /// Issue where the stored credential is missing or not fresh enough.
    case issue
    /// Issue a new credential for every account.
    case rotate
}

/// Options of a bulk run.
public struct BulkOptions: Sendable {
    public var kind: CredentialKind
    public var mode: BulkMode
    /// Requests to KIS in flight at once.
    public var concurrency = 16
    /// With `issue`: issue even when the stored credential is fresh.
    public var force = false
    /// Report what would be done without contacting KIS.
    public var dryRun = false
    /// With `issue`: a stored credential valid for less than this is reissued.
    public var minTTL: TimeInterval = BulkOptions.defaultMinTTL
    /// What "fresh enough" means when nobody says: ten minutes left.
    public static let defaultMinTTL: TimeInterval = 600
    /// Results are committed in batches of up to this many, or after `commitDelay`.
    public var commitBatch = 64
    public var commitDelay: TimeInterval = 0.020
    /// A host that failed this many requests in a row to connections (`unavailable`) with
    /// no success yet is taken for down: the rest of the run is not attempted (reported
    /// `unreachable`) instead of each account waiting out its retries. 0 never stops.
    public var stopAfterUnreachable = 8

    public init(kind: CredentialKind, mode: BulkMode) {
        self.kind = kind
        self.mode = mode
    }
}

/// One account's line in a bulk report.
public struct BulkItemResult: Sendable, Codable, Equatable {
    /// The code of an account issued at KIS whose commit's answer was lost with the
    /// connection: stored or not, a rerun finds out (``VaultError/commitUnknown(location:detail:)``).
    public static let commitUnknownCode = "commit-unknown"
    /// The codes of a run's own outcomes (not KIS's): no such account (or removed during
    /// the run), issued but not stored, never attempted, KIS's host plainly down. The CLI's
    /// report matches on these, not on strings of its own.
    public static let notFoundCode = "not-found"
    public static let notStoredCode = "not-stored"
    public static let notAttemptedCode = "not-attempted"
    public static let unreachableCode = "unreachable"
    /// KIS answered with no usable answer, or not at all, after the retries.
    public static let unavailableCode = "unavailable"

    /// An account KIS issued a credential for whose commit failed with `error`: not stored,
    /// or, when the connection went with COMMIT in flight, stored or not.
    static func unstored(_ name: String, _ error: any Error) -> BulkItemResult {
        let reason = (error as? VaultError)?.description ?? "\(error)"
        if case .commitUnknown = error as? VaultError {
            return BulkItemResult(account: name, status: .failed, errorCode: commitUnknownCode, message: "issued at KIS, stored or not: \(reason)")
        }
        return BulkItemResult(account: name, status: .failed, errorCode: notStoredCode, message: "issued at KIS but not stored: \(reason)")
    }

    /// An account removed while the run had it in hand (`issued`: KIS had answered for it).
    static func removed(_ name: String, issued: Bool) -> BulkItemResult {
        BulkItemResult(account: name, status: .failed, errorCode: notFoundCode,
                       message: "the account '\(name)' was removed during the run" + (issued ? "; what KIS issued for it was not stored" : ""))
    }
    public enum Status: String, Sendable, Codable {
        case issued, rotated, skipped, failed
        case wouldIssue = "would-issue"
    }

    public var account: String
    public var status: Status
    public var errorCode: String?
    public var message: String?
    public var expiresAt: String?

    public init(account: String, status: Status, errorCode: String? = nil, message: String? = nil, expiresAt: String? = nil) {
        self.account = account
        self.status = status
        self.errorCode = errorCode
        self.message = message
        self.expiresAt = expiresAt
    }
}

/// Live counters of a bulk run, read by the progress display.
public final class BulkProgress: @unchecked Sendable {
    private let lock = NSLock()
    public let total: Int
    public let started = Date()
    private var _done = 0, _failed = 0, _skipped = 0
    private var stop = false
    /// True for the counters of a run elsewhere (an agent's): a stop asked of them does
    /// not reach it, and the caller cancels the stream instead.
    public let isRemote: Bool

    public init(total: Int, remote: Bool = false) {
        self.total = total
        isRemote = remote
    }

    /// Asks the run to start no more accounts: requests in flight finish and are
    /// committed, the rest is reported not attempted, for `reason` (Ctrl-C; a lock of the
    /// agent running it). The first reason given is kept.
    public func requestStop(reason: String = "the run was interrupted") {
        lock.withLock {
            if !stop { stopWhy = reason }
            stop = true
        }
    }

    public var isStopRequested: Bool { lock.withLock { stop } }
    /// Why the run was stopped, once it was.
    public var stopReason: String { lock.withLock { stopWhy } }
    private var stopWhy = "the run was interrupted"

    func record(_ status: BulkItemResult.Status) {
        lock.lock()
        _done += 1
        if status == .failed { _failed += 1 }
        if status == .skipped { _skipped += 1 }
        let changed = onChange
        lock.unlock()
        changed?()
    }

    private var onChange: (@Sendable () -> Void)?

    /// Calls `handler` (on the recording task, briefly) each time an account finishes: for
    /// the one watcher (a later call replaces it) that reports progress when it changes
    /// rather than polling the counts.
    public func observe(_ handler: @escaping @Sendable () -> Void) {
        lock.withLock { onChange = handler }
    }

    /// Sets the counters from a run elsewhere (an agent's, streamed to a client).
    public func update(done: Int, failed: Int, skipped: Int) {
        lock.lock()
        (_done, _failed, _skipped) = (done, failed, skipped)
        lock.unlock()
    }

    /// Accounts finished, failed and skipped so far.
    public var counts: (done: Int, failed: Int, skipped: Int) {
        lock.lock(); defer { lock.unlock() }
        return (_done, _failed, _skipped)
    }
}

extension KeyManager {
    /// Issues or rotates credentials for `accounts`: a bounded pool of workers, leases
    /// claimed in batches, results committed in small batches as they land, failures
    /// reported per account and never retried when KIS rejected the credentials.
    ///
    /// A run killed part-way loses nothing committed; running it again skips what is fresh
    /// and issues the rest. Accounts being issued by another process are waited for and
    /// reported as skipped.
    public func bulk(accounts: [String], options: BulkOptions, progress: BulkProgress? = nil) async throws -> [BulkItemResult] {
        let progress = progress ?? BulkProgress(total: accounts.count)
        if !options.dryRun { vault.vault.storage.prepareToClaim(owner: owner.text) }
        let started = now()
        let kind = options.kind
        let minTTL = options.minTTL
        let wantsFresh = options.mode == .issue && !options.force
        let accept: @Sendable (CredentialTimes, Date) -> Bool = { times, now in
            times.isBelievable(at: now, longest: KISFacts.longestTokenLifetime)
                && (wantsFresh ? times.expiresAt.timeIntervalSince(now) >= minTTL : times.issuedAt >= started)
        }
        let snapshots = Dictionary(uniqueKeysWithValues: try vault.vault.issuanceSnapshots(kind: kind).map { ($0.account, $0) })

        var results: [String: BulkItemResult] = [:]
        var toIssue: [(id: String, name: String)] = []
        let now = self.now()
        for name in accounts {
            guard let snapshot = snapshots[name] else {
                results[name] = BulkItemResult(account: name, status: .failed, errorCode: BulkItemResult.notFoundCode, message: "no account named '\(name)'")
                progress.record(.failed)
                continue
            }
            if let current = snapshot.current, accept(current, now) {
                results[name] = BulkItemResult(account: name, status: .skipped, message: "fresh", expiresAt: Timestamp.string(current.expiresAt))
                progress.record(.skipped)
            } else if let code = snapshot.rejectedCode {
                let error = KeyManagerError.previouslyRejected(account: name, code: code, message: snapshot.rejectedMessage ?? "")
                results[name] = BulkItemResult(account: name, status: .failed, errorCode: code, message: error.description)
                progress.record(.failed)
            } else if options.dryRun {
                results[name] = BulkItemResult(account: name, status: .wouldIssue)
                progress.record(.wouldIssue)
            } else {
                toIssue.append((snapshot.accountID, name))
            }
        }

        // Work in the order the rows are stored (by account id), not by name: accounts
        // claimed and committed together then share B-tree pages, so each transaction
        // writes a few pages to the WAL instead of one or two per account.
        let queue = toIssue.sorted { $0.id < $1.id }.map(\.name)
        let dispenser = ClaimDispenser(manager: self, accounts: queue, kind: kind, chunk: max(options.concurrency, 8), accept: accept)
        let committer = Committer(manager: self, batch: options.commitBatch, delay: options.commitDelay)
        let issuedStatus: BulkItemResult.Status = options.mode == .rotate ? .rotated : .issued
        let health = HostHealth(stopAfter: options.stopAfterUnreachable)
        let workerResults = await withTaskGroup(of: [BulkItemResult].self) { group in
            for _ in 0..<max(1, min(options.concurrency, queue.count)) {
                group.addTask {
                    var mine: [BulkItemResult] = []
                    // A vault that cannot be written (a full disk) stops the run: every
                    // further request would be a credential issued at KIS (for a real
                    // account, a text to its owner) that cannot be kept.
                    // A cancelled run (its caller went away) sends nothing more.
                    while await !committer.hasFailed, !Task.isCancelled, !health.isDown, !progress.isStopRequested {
                        let next: (String, Step)?
                        do { next = try await dispenser.next() } catch {
                            await committer.noteFailure(error)
                            break
                        }
                        guard let (name, claim) = next else { break }
                        let result = await self.bulkOne(name: name, claim: claim, kind: kind, issuedStatus: issuedStatus,
                                                        committer: committer, progress: progress, accept: accept)
                        health.record(result)
                        progress.record(result.status)
                        mine.append(result)
                    }
                    return mine
                }
            }
            var all: [BulkItemResult] = []
            for await part in group { all += part }
            return all
        }
        try? await committer.flush()
        // Leases claimed ahead for requests never sent (the run stopped early: KIS down,
        // Ctrl-C, a vault that cannot be written) are given back at once, so no other
        // process waits a lease duration for them.
        await dispenser.releaseUnsent()
        for result in workerResults { results[result.account] = result }
        if let failure = await committer.failure {
            // Say per account what the failure cost: issued at KIS but never stored, or
            // never attempted. Everything else in the report was committed.
            let lost = await committer.lost
            let reason = (failure as? VaultError)?.description ?? "\(failure)"
            for (id, name) in toIssue {
                if let result = results[name], result.status == .issued || result.status == .rotated {
                    guard lost.contains(id) else { continue }
                    results[name] = .unstored(name, failure)
                } else if results[name] == nil {
                    results[name] = BulkItemResult(account: name, status: .failed, errorCode: BulkItemResult.notAttemptedCode,
                                                   message: "not attempted: the vault could not be written: \(reason)")
                    progress.record(.failed)
                }
            }
        }
        let removed = await committer.removed
        for (id, name) in toIssue where removed.contains(id) {
            // Issued at KIS, but the account was gone when the answer was to be stored.
            guard let result = results[name], result.status == .issued || result.status == .rotated else { continue }
            results[name] = .removed(name, issued: true)
        }
        if let down = health.downReason, !Task.isCancelled {
            // The host is plainly down: what was not sent is said so, once per account.
            for name in accounts where results[name] == nil {
                results[name] = BulkItemResult(account: name, status: .failed, errorCode: BulkItemResult.unreachableCode,
                                               message: "not attempted: \(down)")
                progress.record(.failed)
            }
        }
        if progress.isStopRequested || Task.isCancelled {
            for name in accounts where results[name] == nil {
                results[name] = BulkItemResult(account: name, status: .failed, errorCode: BulkItemResult.notAttemptedCode,
                                               message: "not attempted: \(progress.stopReason)")
                progress.record(.failed)
            }
        }
        return accounts.compactMap { results[$0] }
    }

    func bulkOne(name: String, claim: Step, kind: CredentialKind, issuedStatus: BulkItemResult.Status,
                 committer: Committer, progress: BulkProgress, accept: @escaping @Sendable (CredentialTimes, Date) -> Bool) async -> BulkItemResult {
        do {
            switch claim {
            case .cached:
                let stored = try vault.vault.issuanceSnapshot(account: name, kind: kind).current
                return BulkItemResult(account: name, status: .skipped, message: "issued by another process",
                                      expiresAt: stored.map { Timestamp.string($0.expiresAt) })
            case .rejected(let code, let message):
                let error = KeyManagerError.previouslyRejected(account: name, code: code, message: message)
                return BulkItemResult(account: name, status: .failed, errorCode: code, message: error.description)
            case .removed:
                return .removed(name, issued: false)
            case .waitForOther, .waitForInterval:
                // Contended or inside the token minute: the single-account path waits it out.
                let issued = try await obtain(account: name, kind: kind, stop: progress, isAcceptable: accept)
                return BulkItemResult(account: name, status: issued.fromCache ? .skipped : issuedStatus,
                                      message: issued.fromCache ? "issued by another process" : nil,
                                      expiresAt: Timestamp.string(issued.times.expiresAt))
            case .request(let claim):
                let result = try await requestReleasingOnError(claim)
                switch result {
                case .issued(let text, let times):
                    // Sealed here, in the worker: the committer holds only ciphertext.
                    do {
                        try await committer.submit(claim.snapshot, .issued(seal(text, for: claim), times))
                    } catch {
                        return .unstored(name, error)
                    }
                    return BulkItemResult(account: name, status: issuedStatus, expiresAt: Timestamp.string(times.expiresAt))
                case .failed(let error) where error.isRateLimited:
                    _ = try? record(claim, result: result)
                    let issued = try await obtain(account: name, kind: kind, stop: progress, isAcceptable: accept)
                    return BulkItemResult(account: name, status: issuedStatus, expiresAt: Timestamp.string(issued.times.expiresAt))
                case .failed(let error):
                    try await committer.submit(claim.snapshot, .failed(error))
                    let wrapped = KeyManagerError.kis(account: name, error)
                    return BulkItemResult(account: name, status: .failed, errorCode: wrapped.code, message: wrapped.description)
                }
            }
        } catch let error as KeyManagerError {
            return BulkItemResult(account: name, status: .failed, errorCode: error.code, message: error.description)
        } catch {
            return BulkItemResult(account: name, status: .failed, errorCode: "vault", message: "\(error)")
        }
    }
}

/// Whether a bulk run's requests still reach KIS: `stopAfter` connection failures in a
/// row, before any success, mark the host down.
final class HostHealth: @unchecked Sendable {
    private let lock = NSLock()
    private let stopAfter: Int
    private var inARow = 0
    private var succeeded = false
    private var reason: String?

    init(stopAfter: Int) { self.stopAfter = stopAfter }

    var isDown: Bool { lock.withLock { reason != nil } }
    var downReason: String? { lock.withLock { reason } }

    func record(_ result: BulkItemResult) {
        lock.lock(); defer { lock.unlock() }
        switch result.status {
        case .issued, .rotated, .skipped:
            succeeded = true
            inARow = 0
        case .failed where result.errorCode == BulkItemResult.unavailableCode:
            inARow += 1
            if stopAfter > 0, !succeeded, inARow >= stopAfter, reason == nil {
                reason = "KIS did not answer \(inARow) requests in a row and none succeeded, so the run stopped (the last: \(result.message ?? "unavailable"))"
            }
        case .failed, .wouldIssue:
            inARow = 0
        }
    }
}

/// Hands accounts to workers, claiming their leases a chunk at a time in one transaction.
///
/// The next chunk is claimed while the current one's requests are in flight, on a queue of
/// its own (off the concurrency pool), so a worker back from KIS finds its next account
/// claimed instead of waiting for a transaction: at most two chunks are claimed ahead of
/// the requests. A claim handed out later than `maxAge` after it was made (the requests
/// before it were slow) has its lease and request time renewed first, so no lease runs out
/// under a request not yet sent and the token minute counts from when the request went:
/// for tokens `maxAge` is a quarter of a second (KIS counts its minute per appkey), for
/// approval keys 2 s.
actor ClaimDispenser {
    typealias Entry = (name: String, step: KeyManager.Step, claimedAt: ContinuousClock.Instant)

    let manager: KeyManager
    let kind: CredentialKind
    let chunk: Int
    let maxAge: Duration
    let accept: @Sendable (CredentialTimes, Date) -> Bool
    private var remaining: ArraySlice<String>
    /// Claimed and not handed out yet; the next one last.
    private var ready: [Entry] = []
    /// The chunk being claimed, numbered so that only one of its waiters takes it in.
    private var claiming: (number: Int, task: Task<[Entry], any Error>)?
    private var chunksStarted = 0
    private let queue = DispatchQueue(label: "kisvault.bulk.claims")

    init(manager: KeyManager, accounts: [String], kind: CredentialKind, chunk: Int, accept: @escaping @Sendable (CredentialTimes, Date) -> Bool) {
        self.manager = manager
        self.remaining = accounts[...]
        self.kind = kind
        self.chunk = chunk
        self.accept = accept
        maxAge = .seconds(min(kind == .token ? 0.25 : 2, manager.configuration.leaseDuration / 4))
    }

    func next() async throws -> (String, KeyManager.Step)? {
        while true {
            if let entry = ready.popLast() {
                if ready.count < chunk { startClaiming() }
                if ContinuousClock.now - entry.claimedAt > maxAge, case .request(let claim) = entry.step {
                    return (entry.name, try await renewed(claim))
                }
                return (entry.name, entry.step)
            }
            guard let (number, task) = claiming ?? startClaiming() else { return nil }
            let claimed: [Entry]
            do {
                claimed = try await task.value
            } catch {
                if claiming?.number == number { claiming = nil }
                throw error
            }
            if claiming?.number == number {
                claiming = nil
                ready.insert(contentsOf: claimed, at: 0)
            }
        }
    }

    /// Starts claiming the next chunk unless one is being claimed or none is left.
    @discardableResult
    private func startClaiming() -> (number: Int, task: Task<[Entry], any Error>)? {
        guard claiming == nil, !remaining.isEmpty else { return claiming }
        let names = Array(remaining.prefix(chunk))
        remaining = remaining.dropFirst(names.count)
        let (manager, kind, accept) = (manager, kind, accept)
        let task = Task { [queue] in
            try await Self.onQueue(queue) { () throws -> [Entry] in
                let now = manager.now()
                let decided = try manager.vault.withIssuance(accounts: names, kind: kind) { tx in
                    try manager.decide(tx, kind: kind, now: now, isAcceptable: accept)
                }
                let claimedAt = ContinuousClock.now
                return names.reversed().map { ($0, decided[$0] ?? .removed, claimedAt) }
            }
        }
        chunksStarted += 1
        claiming = (chunksStarted, task)
        return claiming
    }

    /// `claim` with its lease and request time set from now. A lease that ran out
    /// meanwhile and was taken over by another process is left to it (the worker then
    /// waits for its result); an account removed since is reported so.
    private func renewed(_ claim: KeyManager.Claim) async throws -> KeyManager.Step {
        let manager = manager
        let (found, held) = try await Self.onQueue(queue) { () throws -> (Int, Bool) in
            var held = false
            let found = try manager.vault.withClaimed([claim.snapshot]) { tx in
                let now = manager.now()
                held = try tx.renewClaim(owner: manager.owner.text, until: now.addingTimeInterval(manager.configuration.leaseDuration), requestAt: now)
            }
            return (found, held)
        }
        guard found == 1 else { return .removed }
        return held ? .request(claim) : .waitForOther
    }

    /// Releases the leases of claims handed to no worker (a chunk still being claimed
    /// included), and forgets what was not claimed.
    func releaseUnsent() async {
        remaining = []
        if let (_, task) = claiming {
            claiming = nil
            ready += (try? await task.value) ?? []
        }
        let claims = ready.compactMap { entry -> IssuanceSnapshot? in
            if case .request(let claim) = entry.step { return claim.snapshot }
            return nil
        }
        ready = []
        let manager = manager
        _ = try? await Self.onQueue(queue) { try manager.vault.withClaimed(claims) { tx in try tx.releaseLease(owner: manager.owner.text) } }
    }

    /// Runs `body` (vault transactions, which block) on `queue`.
    private static func onQueue<T: Sendable>(_ queue: DispatchQueue, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}

/// Collects results and commits them in batches: one fsync per batch instead of one per
/// account. A batch waits at most `delay` seconds, so each result is durable moments after
/// it lands; a run killed in that window loses only what was in flight anyway.
///
/// Results arrive sealed and are stored against the snapshot their lease was claimed
/// with: the commit reads nothing again. Commits run one at a time, in order, on a queue
/// of their own, so a commit that waits on a database server (milliseconds of round trips)
/// blocks neither the workers handing in the next results nor the concurrency pool.
actor Committer {
    /// One answer from KIS, ready to store.
    enum Outcome: Sendable {
        case issued(SealedCredential, CredentialTimes)
        case failed(KISError)
    }

    let manager: KeyManager
    let batch: Int
    let delay: TimeInterval
    var pending: [(IssuanceSnapshot, Outcome)] = []
    var scheduled = false
    private let queue = DispatchQueue(label: "kisvault.bulk.commits")
    private let outcome = CommitOutcome()

    /// The first failure to write the vault; nothing is committed after it.
    var failure: (any Error)? { outcome.failure }
    /// Accounts (by id) whose issued credential was in a batch that failed to commit.
    var lost: Set<String> { outcome.lost }
    var removed: Set<String> { outcome.removed }
    var hasFailed: Bool { outcome.failure != nil }

    /// Records a vault failure met elsewhere (claiming leases): the run stops.
    func noteFailure(_ error: any Error) {
        outcome.fail(error, losing: [])
    }

    init(manager: KeyManager, batch: Int, delay: TimeInterval) {
        self.manager = manager
        self.batch = batch
        self.delay = delay
    }

    func submit(_ claimed: IssuanceSnapshot, _ outcome: Outcome) async throws {
        if let failure { throw failure }
        pending.append((claimed, outcome))
        if pending.count >= batch {
            startCommit()
        } else if !scheduled {
            scheduled = true
            Task {
                try? await Task.sleep(for: .seconds(delay))
                self.timedFlush()
            }
        }
    }

    func timedFlush() {
        scheduled = false
        startCommit()
    }

    /// Commits what is pending and waits for every commit started before. After a failure
    /// elsewhere (claiming leases) the pending results are still tried: stored if the
    /// vault takes them, else marked lost.
    func flush() async throws {
        startCommit()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in queue.async { done.resume() } }
        if let failure { throw failure }
    }

    /// Queues the pending results' commit behind the ones before it.
    private func startCommit() {
        guard !pending.isEmpty else { return }
        let items = pending
        pending = []
        let (manager, outcome) = (manager, outcome)
        queue.async {
            let outcomes = Dictionary(items.map { ($0.0.accountID, $0.1) }, uniquingKeysWith: { a, _ in a })
            do {
                var present = Set<String>()
                try manager.vault.withClaimed(items.map(\.0)) { tx in
                    present.insert(tx.snapshot.accountID)
                    switch outcomes[tx.snapshot.accountID] {
                    case .issued(let sealed, let times): try manager.store(tx, sealed, times)
                    case .failed(let error): try manager.fail(tx, error)
                    case nil: break
                    }
                }
                // Accounts removed since they were claimed: nothing of theirs was stored.
                outcome.markRemoved(items.map(\.0.accountID).filter { !present.contains($0) })
            } catch {
                // The batch's transaction rolled back whole: its issued credentials are lost.
                outcome.fail(error, losing: items.compactMap { snapshot, result in
                    if case .issued = result { return snapshot.accountID }
                    return nil
                })
            }
        }
    }
}

/// What the commits of a bulk run came to, written from the commit queue and read by the
/// run.
final class CommitOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var _failure: (any Error)?
    private var _lost: Set<String> = []

    var failure: (any Error)? { lock.withLock { _failure } }
    var lost: Set<String> { lock.withLock { _lost } }
    private var _removed: Set<String> = []
    /// Accounts whose result found them removed at its commit.
    var removed: Set<String> { lock.withLock { _removed } }

    func markRemoved(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        lock.withLock { _removed.formUnion(ids) }
    }

    func fail(_ error: any Error, losing ids: [String]) {
        lock.withLock {
            if _failure == nil { _failure = error }
            _lost.formUnion(ids)
        }
    }
}
