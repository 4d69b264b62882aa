import Foundation

/// This machine's clock, as kisvault reads it. `KISVAULT_CLOCK_OFFSET_SECONDS` shifts it
/// (read once per process): tests run "machines" whose clocks disagree without touching
/// the real one. Nothing else should read `Date()` for a decision that other machines
/// must agree with; those add ``VaultStorage/clockOffset()`` (the key manager's `now()`).
public enum MachineClock {
    /// The shift from `KISVAULT_CLOCK_OFFSET_SECONDS` (``EnvironmentSettings/clockOffset``).
    public static let offset: TimeInterval = EnvironmentSettings.clockOffset.value()

    public static func now() -> Date { Date().addingTimeInterval(offset) }
}

extension Vault {
    /// This vault's clock: this machine's, corrected to a team vault's server. The one that
    /// doctor, the agent's metrics and the credential service read (the key manager adds
    /// the same offset to its own, injectable, clock).
    public func now() -> Date { MachineClock.now().addingTimeInterval(storage.clockOffset()) }
}

/// How far a storage's clock is ahead of this machine's: zero for a vault file (the
/// machine's clock is the only one), measured from the server for a team vault, so that
/// every machine decides leases, the token minute and expiry by one clock.
final class ServerClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: TimeInterval = 0
    private var measuredAt: Date?
    /// How long a measurement is trusted (a machine's clock can be stepped by NTP).
    let refreshAfter: TimeInterval = 300

    /// The offset, and whether it is due to be measured again.
    var current: (offset: TimeInterval, stale: Bool) {
        lock.withLock { (offset, measuredAt.map { Date().timeIntervalSince($0) > refreshAfter } ?? true) }
    }

    /// Takes the best of `samples`: (server time, machine time before, machine time
    /// after). The round trip with the least delay bounds the error by half its length.
    func record(_ samples: [(server: Date, before: Date, after: Date)]) {
        guard let best = samples.min(by: { $0.after.timeIntervalSince($0.before) < $1.after.timeIntervalSince($1.before) }) else { return }
        let middle = best.before.addingTimeInterval(best.after.timeIntervalSince(best.before) / 2)
        lock.withLock {
            offset = best.server.timeIntervalSince(middle)
            measuredAt = Date()
        }
    }
}
