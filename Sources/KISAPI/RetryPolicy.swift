import Foundation

/// How retryable failures are retried: exponential backoff with full jitter (a random
/// delay between zero and `base × 2^attempt`, capped), bounded in count and total time.
///
/// Why full jitter: a bulk run retries many accounts at once after a KIS hiccup; random
/// spreading keeps them from returning in lockstep and tripping the per-second limit.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    public var baseDelay: TimeInterval
    public var maxDelay: TimeInterval
    /// No retry starts after this much time since the first attempt.
    public var maxTotal: TimeInterval

    public init(maxAttempts: Int = 4, baseDelay: TimeInterval = 0.2, maxDelay: TimeInterval = 5, maxTotal: TimeInterval = 30) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxTotal = maxTotal
    }

    /// No retries at all.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    public func delay(after attempt: Int, using generator: inout some RandomNumberGenerator) -> TimeInterval {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...max(ceiling, 0), using: &generator)
    }
}

/// A token bucket shared by concurrent callers: at most `rate` acquisitions per second
/// on average, bursts of up to `burst`. Used per host so a bulk run never floods KIS.
///
/// A caller that finds the bucket empty reserves the next free slot (the balance goes
/// negative) and sleeps until exactly that slot, once. Waiters that slept and looked again
/// would all wake together for every token and all but one sleep again: with 32 workers
/// held at the limit, that herd cost more CPU than the requests. The bookkeeping is a few
/// arithmetic operations under a lock, not an actor: no hop per request.
public final class RateLimiter: @unchecked Sendable {
    // @unchecked: the mutable state is only touched under `lock`.
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant
    private let epoch: ContinuousClock.Instant
    private let lock = NSLock()
    /// Waiters wake on a grid of this many seconds.
    static let grid = 0.010

    public init(rate: Double, burst: Double? = nil) {
        self.rate = rate
        self.burst = burst ?? max(1, rate / 10)
        self.tokens = self.burst
        self.last = .now
        self.epoch = last
    }

    /// Waits until a request may go.
    /// - Throws: `CancellationError` when cancelled while waiting (its slot is given back).
    public func acquire() async throws {
        guard let wake = reserve() else { return }
        do {
            try await Task.sleep(until: wake, clock: .continuous)
        } catch {
            lock.withLock { tokens += 1 }
            throw error
        }
    }

    /// Tokens in the bucket; negative while slots are reserved (for tests).
    var balance: Double { lock.withLock { tokens } }

    /// Takes a token, or reserves the next slot and returns when to wake for it.
    private func reserve() -> ContinuousClock.Instant? {
        lock.withLock {
            let now = ContinuousClock.now
            tokens = min(burst, tokens + Double((now - last) / .seconds(1)) * rate)
            last = now
            tokens -= 1
            guard tokens < 0 else { return nil }
            // Wake on the grid rather than at the exact slot: waiters whose slots fall in
            // one window wake together, one timer wake-up for several requests instead of
            // one each. Never earlier than the slot, so the average rate holds; at most
            // `rate * grid` go together, inside the burst.
            let due = (now - epoch) / .seconds(1) - tokens / rate
            return epoch + .seconds((due / Self.grid).rounded(.up) * Self.grid)
        }
    }
}
