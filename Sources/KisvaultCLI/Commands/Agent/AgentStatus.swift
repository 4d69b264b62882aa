import ArgumentParser
import CredentialService
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension AgentCommand {
    /// `kisvault agent status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show whether an agent runs, for which vault, and whether it is locked.",
            usage: "kisvault agent status [options]",
            discussion: "Exits 4 when no agent answers, 3 when it is locked.\n\nExample:\n  kisvault agent status --format json")
        @OptionGroup var socket: SocketOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let status = try AgentControl.status(socket: socket.path, timeout: 30)
            if output.json {
                try Terminal.json(status)
            } else {
                try Terminal.out("""
                    socket:  \(Terminal.escape(socket.path))
                    vault:   \(Terminal.escape(status.vault))
                    pid:     \(status.pid)
                    started: \(Terminal.escape(status.startedAt))
                    kis:     real \(Terminal.escape(status.kisURLs.real)), mock \(Terminal.escape(status.kisURLs.mock))
                    state:   \(status.locked ? "locked (\(Terminal.escape(status.lockReason ?? "?")))" : "unlocked")
                    """)
                if let renewal = status.renewal { try Terminal.out(Self.describe(renewal)) }
            }
            if status.locked { throw CLIError.reported(.locked) }
        }

        /// The renewal lines: what is kept renewed, what was, and every account failing.
        static func describe(_ renewal: RenewalStatus) -> String {
            let scope = renewal.tag.map { "accounts tagged \(Terminal.escape($0))" } ?? "every account"
            var lines = ["renew:   \(scope), under \(DurationArgument.text(renewal.beforeSeconds)) left, every \(DurationArgument.text(renewal.intervalSeconds))"
                + "; renewed \(renewal.renewedApprovalKeys) approval keys, \(renewal.renewedTokens) tokens in \(renewal.passes) passes"
                + (renewal.lastPassAt.map { " (last \(Terminal.escape($0)))" } ?? "")]
            for failing in renewal.failing {
                lines.append("failing: \(Terminal.escape(failing.account)) \(failing.kind.noun): \(Terminal.escape(failing.errorCode ?? "error")) "
                    + "\(Terminal.escape(failing.message)) (\(failing.attempts) attempts, next \(Terminal.escape(failing.nextAttemptAt)))")
            }
            return lines.joined(separator: "\n")
        }
    }
}
