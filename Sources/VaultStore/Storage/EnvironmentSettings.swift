import Foundation

/// The environment variables kisvault reads as numbers or names, each parsed and
/// range-checked here and nowhere else. `kisvault` refuses to start on a bad one (exit 2,
/// ``problems(in:)``) rather than trap on it, store a time it cannot print, or ignore it.
public enum EnvironmentSettings {
    /// A variable holding a number of seconds, and the values that make sense for it.
    public struct Seconds: Sendable {
        public let name: String
        public let range: ClosedRange<Double>
        public let defaultValue: Double

        /// The value in `environment`; the default when unset or not valid (a command never
        /// gets that far: ``problems(in:)`` refused it at the start).
        public func value(in environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
            guard let text = environment[name] else { return defaultValue }
            return (try? parse(text)) ?? defaultValue
        }

        /// The value of `text`, or why it is not one.
        func parse(_ text: String) throws(SettingProblem) -> Double {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard let seconds = Double(trimmed), seconds.isFinite else {
                throw SettingProblem("\(name) is not a number of seconds; unset it or give one between \(Self.show(range.lowerBound)) and \(Self.show(range.upperBound))")
            }
            guard range.contains(seconds) else {
                throw SettingProblem("\(name) is \(trimmed.count > 24 ? String(trimmed.prefix(24)) + "…" : trimmed), outside \(Self.show(range.lowerBound))...\(Self.show(range.upperBound)) seconds; unset it or give a value in that range")
            }
            return seconds
        }

        static func show(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }
    }

    struct SettingProblem: Error { let text: String; init(_ text: String) { self.text = text } }

    /// Seconds to wait for another writer of the vault (default 5; at most an hour).
    public static let busyTimeout = Seconds(name: "KISVAULT_BUSY_TIMEOUT", range: 0...3600, defaultValue: 5)
    /// How far to shift this machine's clock (tests of machines that disagree). A year
    /// either way: beyond it a stored time would be one no real clock will reach.
    public static let clockOffset = Seconds(name: "KISVAULT_CLOCK_OFFSET_SECONDS", range: -366 * 86_400...366 * 86_400, defaultValue: 0)

    /// `KISVAULT_HOST_ID`: this machine's name in lease owners, 1 to 64 letters, digits and
    /// `.-_` (a `:` would split the owner's `host:pid:nonce`).
    public static let hostIDName = "KISVAULT_HOST_ID"

    public static func hostID(in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        guard let id = environment[hostIDName], isHostID(id) else { return nil }
        return id
    }

    static func isHostID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy { $0 == 0x2E || $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    /// What is wrong with the environment, one line per variable; empty when nothing is.
    /// Values are never echoed beyond a short prefix of a number (no variable checked
    /// here holds a secret).
    public static func problems(in environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var problems: [String] = []
        for setting in [busyTimeout, clockOffset] {
            guard let text = environment[setting.name] else { continue }
            do { _ = try setting.parse(text) } catch { problems.append(error.text) }
        }
        if let id = environment[hostIDName], !isHostID(id) {
            problems.append("\(hostIDName) must be 1 to 64 letters, digits, '.', '-' or '_' (this machine's name in leases); unset it or give such a name")
        }
        return problems
    }
}
