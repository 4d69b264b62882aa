import ArgumentParser
import CredentialService
import Foundation
import KisvaultAgent
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension AgentCommand {
    /// `kisvault agent start`
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Unlock the vault and serve it on a Unix socket (detaches unless --foreground).",
            usage: "kisvault agent start [options]",
            discussion: """
                Prints the socket path and KISVAULT_AGENT_SOCK=... for eval. Scripts in any language \
                then get credentials with one local request:
                  curl --unix-socket "$KISVAULT_AGENT_SOCK" http://agent/v1/accounts/alpha/access-token
                and kisvault commands use the agent without asking for the passphrase.

                With --renew-before the agent also keeps the approval keys and tokens of \
                every account (or those tagged --renew-tag) renewed before they have less \
                than that left, looking every --renew-interval: a script that asks at market \
                open gets a stored one. Renewals take the same leases and token minute as \
                any issuance (two agents on one vault never renew an account twice), are \
                audited, and show in 'agent status' with any failure and its next retry. \
                A locked agent renews nothing: give --idle-lock a value that covers the \
                hours it must keep renewing.

                Examples:
                  eval "$(kisvault agent start --idle-lock 2h)"
                  eval "$(kisvault agent start --renew-before 1h --renew-tag desk)"
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var socket: SocketOptions
        @OptionGroup var manager: ManagerOptions
        @Option(name: .customLong("idle-lock"), help: ArgumentHelp("Lock after this long without a request (0s: never).", valueName: "duration"))
        var idleLock = DurationArgument(seconds: 3600, text: "1h")
        @Option(name: .customLong("max-lock"), help: ArgumentHelp("Lock this long after start, whatever happens (0s: never).", valueName: "duration"))
        var maxLock = DurationArgument(seconds: 12 * 3600, text: "12h")
        @Flag(help: "Stay in the foreground (logs on stderr).") var foreground = false
        @Option(name: .customLong("log-format"), help: ArgumentHelp("With --foreground: text lines, or one JSON object per line (time, level, event, account, code).", valueName: "text|json"))
        var logFormat: LogFormat = .text
        @Option(name: .customLong("metrics"), help: ArgumentHelp("Serve Prometheus metrics on this loopback address (GET /metrics).", valueName: "host:port"))
        var metrics: String?
        @Flag(name: .customLong("metrics-no-account-labels"), help: "With --metrics: no series per account (a vault of thousands).")
        var metricsNoAccountLabels = false

        /// `--metrics` checked: loopback only.
        var metricsSettings: MetricsSettings? {
            get throws { try metrics.map { try MetricsSettings(address: $0, accountLabels: !metricsNoAccountLabels) } }
        }
        @Option(name: .customLong("renew-before"), help: ArgumentHelp("Renew approval keys and tokens with less than this left (off by default).", valueName: "duration"))
        var renewBefore: DurationArgument?
        @Option(name: .customLong("renew-tag"), help: ArgumentHelp("With --renew-before: only the accounts with this tag.", valueName: "tag"))
        var renewTag: String?
        @Option(name: .customLong("renew-interval"), help: ArgumentHelp("With --renew-before: how often to look.", valueName: "duration"))
        var renewInterval = DurationArgument(seconds: 60, text: "1m")

        func validate() throws {
            do { _ = try metricsSettings } catch { throw ValidationError("\(error)") }
            guard let renewBefore else {
                if renewTag != nil { throw ValidationError("--renew-tag selects what --renew-before renews: give --renew-before too") }
                return
            }
            guard renewBefore.seconds > 0, renewBefore.seconds < CredentialRules.shortestLifetime else {
                throw ValidationError("--renew-before \(renewBefore) must be above 0 and shorter than a credential lives (24h)")
            }
            guard renewInterval.seconds >= 1 else { throw ValidationError("--renew-interval \(renewInterval) must be at least 1s") }
        }

        /// The agent's socket: the one systemd handed over (socket activation), else the
        /// one `--socket` or the environment names.
        func lifecycle() throws -> AgentLifecycle {
            guard let activation = try SocketActivation.take() else {
                return AgentLifecycle(vaultPath: options.path, socketPath: socket.path)
            }
            guard foreground else {
                throw CLIError.badInput("systemd handed the agent its socket (LISTEN_FDS): run it with --foreground, as the unit files do")
            }
            if socket.explicit, socket.path != activation.path {
                throw CLIError.badInput("systemd handed the agent the socket \(activation.path), but --socket or KISVAULT_AGENT_SOCK names \(socket.path): name the same path, or neither")
            }
            return AgentLifecycle(vaultPath: options.path, activation: activation)
        }

        var renewal: RenewalSettings? {
            renewBefore.map { RenewalSettings(before: $0.seconds, tag: renewTag, interval: renewInterval.seconds) }
        }

        func run() async throws {
            let lifecycle = try lifecycle()
            // A second agent on this vault is refused before anything is asked.
            let (unlocked, passphrase) = try lifecycle.unlock(busyTimeout: options.busyTimeout, with: options.unlockSource)
            if foreground {
                if logFormat == .json {
                    // Under systemd (JOURNAL_STREAM set) each line carries its syslog priority.
                    let journal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
                    LoggingSystem.bootstrap { label in JSONLogHandler(logLevel: .notice, label: label, prefix: journal) }
                }
                var logger = Logger(label: "kisvault-agent")
                logger.logLevel = options.verbose ? .info : .notice
                let socketPath = lifecycle.socketPath, vaultPath = options.path
                let json = logFormat == .json, serving = logger
                try await lifecycle.serve(vault: unlocked, settings: manager.settings(busyTimeout: options.busyTimeout), idleLock: idleLock.seconds > 0 ? idleLock.seconds : nil,
                                          maxLock: maxLock.seconds > 0 ? maxLock.seconds : nil, renewal: renewal, metrics: try metricsSettings,
                                          history: options.unlockSource.history, logger: logger) {
                    // The agent serves whether or not its starter reads this line.
                    try? Terminal.out("KISVAULT_AGENT_SOCK=\(socketPath); export KISVAULT_AGENT_SOCK;")
                    if json {
                        serving.notice("serving", metadata: ["vault": "\(vaultPath)", "socket": "\(socketPath)", "pid": "\(getpid())"])
                    } else {
                        Terminal.note("agent serving \(vaultPath) on \(socketPath) (pid \(getpid()))")
                    }
                }
            } else {
                var arguments = ["agent", "start", "--foreground", "--vault", options.path, "--socket", lifecycle.socketPath,
                                 "--passphrase-fd", "0", "--idle-lock", idleLock.text, "--max-lock", maxLock.text]
                if let keyslot = options.keyslot { arguments += ["--keyslot", keyslot] }
                if manager.noWait { arguments.append("--no-wait") }
                arguments += ["--timeout", manager.timeout.text]
                if let renewBefore { arguments += ["--renew-before", renewBefore.text, "--renew-interval", renewInterval.text] }
                if let renewTag { arguments += ["--renew-tag", renewTag] }
                arguments += ["--log-format", logFormat.rawValue]
                if let metrics { arguments += ["--metrics", metrics] + (metricsNoAccountLabels ? ["--metrics-no-account-labels"] : []) }
                let pid = try lifecycle.detach(closing: unlocked, executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                                               arguments: arguments, passphrase: passphrase, environment: ProcessInfo.processInfo.environment)
                try Terminal.out("KISVAULT_AGENT_SOCK=\(lifecycle.socketPath); export KISVAULT_AGENT_SOCK;")
                Terminal.note("agent started (pid \(pid)), serving \(options.path)")
            }
        }
    }
}

/// How the agent writes its records.
enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}
