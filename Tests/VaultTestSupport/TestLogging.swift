import Logging

/// Tests log at warning unless a test is about the log: a retry a test provokes on purpose
/// is not news, and hundreds of them would bury the failure a reader is looking for.
public enum TestLogging {
    /// Installs the warning-level handler, once per test process (swift-log allows one
    /// bootstrap). Harnesses touch it before they make their first client or server, since a
    /// logger takes its handler when it is made.
    public static let warningsOnly: Void = LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
}
