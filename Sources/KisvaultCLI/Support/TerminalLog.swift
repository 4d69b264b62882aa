import CredentialService
import Foundation
import Logging

/// How log records reach a person: one `kisvault:` line each on stderr, escaped like
/// every other message, metadata after the text. Notices (a wait for KIS's token minute)
/// and warnings always show; with `--verbose` the informational records do too (each
/// retry of a request to KIS with its delay).
struct TerminalLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let details = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        Terminal.note("\(event.message)" + (details.isEmpty ? "" : " (\(details))"))
    }

    /// Installs the handler once, for the whole process: `verbose` from the arguments,
    /// read before they are parsed (the first records may come before a command runs).
    static func install(arguments: [String]) {
        let verbose = arguments.contains("--verbose") || arguments.contains("-v")
        LoggingSystem.bootstrap { _ in TerminalLogHandler(logLevel: verbose ? .info : .notice) }
    }
}

/// The agent's records as one JSON object per line on stderr (`agent start --log-format
/// json`): `time`, `level`, `event`, the label, then the record's metadata (`account`,
/// `code`, `reason`, ...) as strings. What kisvault logs carries no secret (no appkey,
/// appsecret, key or token is ever a message or metadata), so nothing is filtered here;
/// control characters are escaped by the JSON encoding itself. journald takes each line
/// as one entry, at the level of its priority prefix (`<5>` notice, `<4>` warning, ...)
/// when `prefix` is set.
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let label: String
    /// sd-daemon's `<N>` priority prefixes, for journald (`SyslogLevelPrefix=` default).
    let prefix: Bool

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: String] = ["time": Timestamp.string(Date()), "level": event.level.rawValue, "event": "\(event.message)", "logger": label]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) where object[key] == nil {
            object[key] = "\(value)"
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        Terminal.err((prefix ? "<\(Self.priority(event.level))>" : "") + String(decoding: data, as: UTF8.self))
    }

    /// syslog's priority of a level.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
