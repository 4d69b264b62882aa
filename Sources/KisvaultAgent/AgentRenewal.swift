import CredentialService
import Foundation
import KeyManager
import Logging
import VaultStore

/// `agent start --renew-before`: what to keep renewed, and how often to look.
public struct RenewalSettings: Sendable {
    /// Renew a credential with less than this left.
    public var before: TimeInterval
    /// Only the accounts with this tag (all when nil).
    public var tag: String?
    /// How often the agent looks.
    public var interval: TimeInterval
    /// Requests to KIS in flight at once during a pass.
    public var concurrency = 8
    /// The longest wait between retries of a failing account.
    public var longestBackoff: TimeInterval = 900

    public init(before: TimeInterval, tag: String?, interval: TimeInterval) {
        self.before = before
        self.tag = tag
        self.interval = interval
    }
}

/// Keeps the selected accounts' approval keys and tokens renewed before they expire, so a
/// script that asks at market open never waits for KIS. Each pass is the bulk `issue` with
/// `--min-ttl` set to the renewal margin: the same leases and token minute as every other
/// issuance, so two agents on one vault (a team vault's machines) never renew one account
/// twice: the second finds it fresh. Renewals are audited as issuances with "renewed by
/// the agent"; a failure is logged, shown in status, and retried with a doubling backoff.
/// Passes do not count as activity: `--idle-lock` still locks an agent nobody uses, and a
/// locked agent renews nothing.
final class Renewer: @unchecked Sendable {
    private struct Key: Hashable {
        var kind: CredentialKind
        var account: String
    }

    private struct Failure {
        var errorCode: String?
        var message: String
        var attempts: Int
        var nextAttempt: Date
    }

    let settings: RenewalSettings
    private let state: AgentState
    private let lock = NSLock()
    private var passes = 0
    private var failedPasses = 0
    private var lastPass: Date?
    private var renewed: [CredentialKind: Int] = [:]
    private var failures: [Key: Failure] = [:]

    init(state: AgentState, settings: RenewalSettings) {
        self.state = state
        self.settings = settings
    }

    /// Passes every `interval` until cancelled, the first at once.
    func run() async {
        while !Task.isCancelled {
            await pass()
            try? await Task.sleep(for: .seconds(settings.interval))
        }
    }

    /// One look at every selected account, both kinds.
    func pass() async {
        guard let manager = try? state.begin(activity: false) else { return }
        defer { state.end(manager, activity: false) }
        let renewing = manager.noting("renewed by the agent")
        let names: [String]
        do {
            names = try manager.vault.vault.accountNames(tag: settings.tag)
        } catch {
            state.logger.warning("renewal: cannot list the accounts", metadata: ["error": "\(error)"])
            lock.withLock {
                passes += 1
                failedPasses += 1
                lastPass = state.now()
            }
            return
        }
        var failed = false
        for kind in [CredentialKind.approval, .token] {
            guard !state.isLocked else { return }
            let now = state.now()
            let due = lock.withLock { names.filter { (failures[Key(kind: kind, account: $0)]?.nextAttempt ?? .distantPast) <= now } }
            guard !due.isEmpty else { continue }
            var options = BulkOptions(kind: kind, mode: .issue)
            options.minTTL = settings.before
            options.concurrency = settings.concurrency
            // Stopped by a lock like any run: what is in flight lands, the rest waits for
            // the next unlock.
            let progress = BulkProgress(total: due.count)
            state.track(progress)
            defer { state.untrack(progress) }
            do {
                let results = try await renewing.bulk(accounts: due, options: options, progress: progress)
                record(kind, results, selected: Set(names))
                if results.contains(where: { $0.status == .failed }) { failed = true }
            } catch {
                state.logger.warning("renewal failed", metadata: ["kind": "\(kind.rawValue)", "error": "\(error)"])
                failed = true
            }
        }
        lock.withLock {
            passes += 1
            if failed { failedPasses += 1 }
            lastPass = state.now()
        }
        state.rememberHead()
    }

    private func record(_ kind: CredentialKind, _ results: [BulkItemResult], selected: Set<String>) {
        let now = state.now()
        lock.lock(); defer { lock.unlock() }
        // Accounts no longer selected (removed, untagged) are forgotten.
        failures = failures.filter { $0.key.kind != kind || selected.contains($0.key.account) }
        for result in results {
            let key = Key(kind: kind, account: result.account)
            switch result.status {
            case .issued, .rotated:
                renewed[kind, default: 0] += 1
                failures[key] = nil
                state.logger.notice("renewed", metadata: ["account": "\(result.account)", "kind": "\(kind.rawValue)", "expires": "\(result.expiresAt ?? "?")"])
            case .skipped, .wouldIssue:
                failures[key] = nil
            case .failed:
                let attempts = (failures[key]?.attempts ?? 0) + 1
                let wait = min(settings.longestBackoff, settings.interval * pow(2, Double(min(attempts - 1, 20))))
                failures[key] = Failure(errorCode: result.errorCode, message: result.message ?? "failed", attempts: attempts,
                                        nextAttempt: now.addingTimeInterval(wait))
                state.logger.warning("renewal failed", metadata: [
                    "account": "\(result.account)", "kind": "\(kind.rawValue)", "error": "\(result.errorCode ?? "-")",
                    "attempts": "\(attempts)", "retry_in_seconds": "\(Int(wait))",
                ])
            }
        }
    }

    var status: RenewalStatus {
        lock.lock(); defer { lock.unlock() }
        let failing = failures.map { key, failure in
            RenewalStatus.Failing(account: key.account, kind: key.kind, errorCode: failure.errorCode,
                                         message: failure.message, attempts: failure.attempts,
                                         nextAttemptAt: Timestamp.string(failure.nextAttempt))
        }.sorted { ($0.account, $0.kind.rawValue) < ($1.account, $1.kind.rawValue) }
        return RenewalStatus(beforeSeconds: settings.before, tag: settings.tag, intervalSeconds: settings.interval, passes: passes, failedPasses: failedPasses,
                             lastPassAt: lastPass.map(Timestamp.string), renewedApprovalKeys: renewed[.approval] ?? 0,
                             renewedTokens: renewed[.token] ?? 0, failing: failing)
    }
}
