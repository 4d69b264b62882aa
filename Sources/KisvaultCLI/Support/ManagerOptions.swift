import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import VaultStore

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
}

/// What commands that talk to KIS share: building the client and the manager.
struct ManagerOptions: ParsableArguments {
    @Flag(name: .customLong("no-wait"), help: "Fail instead of waiting out KIS's once-a-minute token limit.")
    var noWait = false

    /// The manager's clock. `KISVAULT_CLOCK_OFFSET_SECONDS` shifts it; it exists for tests
    /// that move `kis-mock`'s clock (`/__mock/clock/advance`) and must move ours with it.
    static var clock: @Sendable () -> Date {
        let offset = ProcessInfo.processInfo.environment["KISVAULT_CLOCK_OFFSET_SECONDS"].flatMap(Double.init) ?? 0
        return { Date().addingTimeInterval(offset) }
    }

    /// A client for the endpoints in the environment (`KISVAULT_KIS_BASE_URL`, ...).
    static func client(perHostRate: Double? = nil) throws -> KISClient {
        let endpoints: KISEndpoints
        do { endpoints = try KISEndpoints.fromEnvironment() } catch { throw KeyManagerError.configuration(error.description) }
        var configuration = KISClientConfiguration(endpoints: endpoints)
        configuration.perHostRate = perHostRate
        return try KISClient(configuration: configuration)
    }

    func manager(vault: UnlockedVault, perHostRate: Double? = nil) throws -> KeyManager {
        var configuration = KeyManagerConfiguration()
        configuration.waitForTokenInterval = !noWait
        configuration.now = Self.clock
        return KeyManager(vault: vault, client: try Self.client(perHostRate: perHostRate), configuration: configuration)
    }
}

extension CredentialKind {
    /// How users call it.
    var noun: String { self == .approval ? "approval key" : "access token" }
    /// The JSON field of the value (the agent's API uses the same names).
    var jsonField: String { self == .approval ? "approval_key" : "access_token" }
}

/// `--min-ttl` of `get` and `exec`: a remaining validity no 24-hour credential can exceed.
struct MinTTLOptions: ParsableArguments {
    @Option(name: .customLong("min-ttl"), help: ArgumentHelp("Shortest acceptable remaining validity (default 10m).", valueName: "duration"))
    var minTTL = DurationArgument(seconds: 600, text: "10m")

    func validate() throws {
        guard minTTL.seconds < KISFacts.shortestLifetime else {
            throw ValidationError("--min-ttl \(minTTL) is not shorter than an approval key or access token lives (24h): none could satisfy it")
        }
    }

    var seconds: TimeInterval { minTTL.seconds }
}
