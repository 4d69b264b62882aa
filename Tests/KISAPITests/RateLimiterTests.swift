import Foundation
import KISAPI
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

    @Test func aCancelledWaiterThrowsAndGivesItsSlotBack() async throws {
        let limiter = RateLimiter(rate: 1, burst: 1)
        let started = ContinuousClock.now
        try await limiter.acquire()  // the burst; the next slot is a second later
        let waiter = Task { try await limiter.acquire() }  // reserves that slot
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        // The slot was given back: the next caller gets it, a second after the start,
        // not the one after it, two seconds after. Measured from the start, so a slow
        // machine only moves both bounds' margins, not the outcome.
        try await limiter.acquire()
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(950))
        #expect(elapsed < .milliseconds(1900))
    }
}
