import Foundation
@testable import KISAPI
import Testing

/// The per-host token bucket. The bounds asserted are about behaviour, not speed: a
/// limiter must never let requests through faster than its rate, however loaded the
/// machine is.
@Suite struct RateLimiterTests {
    @Test func concurrentCallersAreSpacedAtTheRate() async throws {
        let limiter = RateLimiter(rate: 100, burst: 1)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
            for _ in 0..<21 {
                group.addTask {
                    try await limiter.acquire()
                    return ContinuousClock.now
                }
            }
            var times: [ContinuousClock.Instant] = []
            for try await time in group { times.append(time) }
            // One from the burst, then twenty at 10 ms intervals: the last no earlier than 200 ms.
            let last = try #require(times.max())
            #expect(last - started >= .milliseconds(195))
        }
    }

    /// Deterministic whatever the load: the waiter's slot is 100 s away, so it is still
    /// asleep when cancelled, and the refund is read from the bucket, not from a clock.
    @Test func aCancelledWaiterThrowsAndGivesItsSlotBack() async throws {
        let limiter = RateLimiter(rate: 0.01, burst: 1)
        try await limiter.acquire()  // the burst
        #expect(limiter.balance < 0.01)
        let waiter = Task { try await limiter.acquire() }  // reserves the slot 100 s on
        for _ in 0..<2000 where limiter.balance > -0.5 { try await Task.sleep(for: .milliseconds(5)) }
        try #require(limiter.balance <= -0.5, "the waiter never reserved its slot")
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        // Given back: the bucket is where it was before the waiter came (plus what refilled).
        #expect(limiter.balance > -0.5)
    }
}
