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
public actor RateLimiter {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    public init(rate: Double, burst: Double? = nil) {
        self.rate = rate
        self.burst = burst ?? max(1, rate / 10)
        self.tokens = self.burst
        self.last = .now
    }

    /// Waits until a request may go.
    public func acquire() async throws {
        while true {
            let now = ContinuousClock.now
            tokens = min(burst, tokens + Double((now - last) / .seconds(1)) * rate)
            last = now
            if tokens >= 1 {
                tokens -= 1
                return
            }
            let wait = (1 - tokens) / rate
            try await Task.sleep(for: .seconds(wait))
        }
    }
}
