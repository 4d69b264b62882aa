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
