import ArgumentParser
import Foundation
import CredentialService

/// A duration option: `90` or `90s`, `10m`, `2h`, `1d`, or combinations (`1h30m`).
struct DurationArgument: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var seconds: TimeInterval
    var text: String

    init(seconds: TimeInterval, text: String) {
        self.seconds = seconds
        self.text = text
    }

    init?(argument: String) {
        var total = 0.0
        var number = ""
        var sawUnit = false
        for c in argument.lowercased() {
            if c.isNumber || c == "." { number.append(c); continue }
            guard let value = Double(number) else { return nil }
            switch c {
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86_400
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        if !number.isEmpty {
            guard let value = Double(number) else { return nil }
            total += value
        } else if !sawUnit {
            return nil
        }
        self.init(seconds: total, text: argument)
    }

    var description: String { text }

    /// `--min-ttl`'s default (``CredentialRules/defaultMinTTL``), as help shows it.
    static let defaultMinTTL = DurationArgument(seconds: CredentialRules.defaultMinTTL, text: text(CredentialRules.defaultMinTTL))

    /// `seconds` the way users write it: "1h30m", "45s".
    static func text(_ seconds: TimeInterval) -> String {
        var left = Int(seconds.rounded())
        guard left > 0 else { return "0s" }
        var out = ""
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] where left >= size {
            out += "\(left / size)\(unit)"
            left %= size
        }
        return out
    }
}

/// What commands that talk to KIS share: how the manager waits and which clock it reads.
struct ManagerOptions: ParsableArguments {
    @Flag(name: .customLong("no-wait"), help: "Fail instead of waiting out KIS's once-a-minute token limit.")
    var noWait = false
    @Option(help: ArgumentHelp("Longest wait for KIS per request, retries included.", valueName: "duration"))
    var timeout = DurationArgument(seconds: 30, text: "30s")

    func validate() throws {
        guard BulkRequest.timeoutRange.contains(timeout.seconds) else { throw ValidationError("--timeout \(timeout) must be 1s to 10m") }
    }

    /// The manager's clock: this machine's, which `KISVAULT_CLOCK_OFFSET_SECONDS` shifts,
    /// for tests that move `kis-mock`'s clock (`/__mock/clock/advance`) and ours with it, or
    /// that give "machines" clocks that disagree (a team vault corrects to the server's).
    static var clock: @Sendable () -> Date { { MachineClock.now() } }

    /// The settings of a service that unlocks the vault here (or of an agent started here).
    func settings(busyTimeout: Double) -> LocalCredentialService.Settings {
        var settings = LocalCredentialService.Settings()
        settings.waitForTokenInterval = !noWait
        settings.now = Self.clock
        settings.busyTimeout = busyTimeout
        settings.kisTimeout = timeout.seconds
        return settings
    }
}

/// `--min-ttl` of `get` and `exec`: a remaining validity no 24-hour credential can exceed.
struct MinTTLOptions: ParsableArguments {
    @Option(name: .customLong("min-ttl"), help: ArgumentHelp("Shortest acceptable remaining validity.", valueName: "duration"))
    var minTTL = DurationArgument.defaultMinTTL

    func validate() throws {
        guard minTTL.seconds < CredentialRules.shortestLifetime else {
            throw ValidationError("--min-ttl \(minTTL) is not shorter than an approval key or access token lives (24h): none could satisfy it")
        }
    }

    var seconds: TimeInterval { minTTL.seconds }
}
