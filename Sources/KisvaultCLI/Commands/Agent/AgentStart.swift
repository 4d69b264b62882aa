import ArgumentParser
import Foundation
import KisvaultAgent
import Logging
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

extension AgentCommand {
    /// `kisvault agent start`
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Unlock the vault and serve it on a Unix socket (detaches unless --foreground).",
            discussion: """
                Prints the socket path and KISVAULT_AGENT_SOCK=... for eval. Scripts in any language \
                then get credentials with one local request:
                  curl --unix-socket "$KISVAULT_AGENT_SOCK" http://agent/v1/accounts/alpha/access-token
                and kisvault commands use the agent without asking for the passphrase.

                Example:
                  eval "$(kisvault agent start --idle-lock 2h)"
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var socket: SocketOptions
        @OptionGroup var manager: ManagerOptions
        @Option(name: .customLong("idle-lock"), help: ArgumentHelp("Lock after this long without a request (default 1h).", valueName: "duration"))
        var idleLock = DurationArgument(seconds: 3600, text: "1h")
        @Option(name: .customLong("max-lock"), help: ArgumentHelp("Lock this long after start, whatever happens (default 12h).", valueName: "duration"))
        var maxLock = DurationArgument(seconds: 12 * 3600, text: "12h")
        @Flag(help: "Stay in the foreground (logs on stderr).") var foreground = false

        func run() async throws {
            let lifecycle = AgentLifecycle(vaultPath: options.path, socketPath: socket.path)
            let vault = try options.open(.readWrite)
            // A second agent on this vault is refused before anything is asked.
            try lifecycle.checkNoneRunning()
            let passphrase = try options.passphrase()
            let unlocked = try vault.unlock(passphrase: passphrase, keyslot: options.keyslot)
            if foreground {
                var logger = Logger(label: "kisvault-agent")
                logger.logLevel = options.verbose ? .info : .notice
                let socketPath = lifecycle.socketPath, vaultPath = options.path
                try await lifecycle.serve(vault: unlocked, settings: manager.settings(busyTimeout: options.busyTimeout), idleLock: idleLock.seconds,
                                          maxLock: maxLock.seconds, logger: logger) {
                    // The agent serves whether or not its starter reads this line.
                    try? Terminal.out("KISVAULT_AGENT_SOCK=\(socketPath); export KISVAULT_AGENT_SOCK;")
                    Terminal.note("agent serving \(vaultPath) on \(socketPath) (pid \(getpid()))")
                }
            } else {
                unlocked.vault.close()
                var arguments = ["agent", "start", "--foreground", "--vault", options.path, "--socket", lifecycle.socketPath,
                                 "--passphrase-fd", "0", "--idle-lock", idleLock.text, "--max-lock", maxLock.text]
                if let keyslot = options.keyslot { arguments += ["--keyslot", keyslot] }
                if manager.noWait { arguments.append("--no-wait") }
                let pid = try lifecycle.detach(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                                               arguments: arguments, passphrase: passphrase, environment: ProcessInfo.processInfo.environment)
                try Terminal.out("KISVAULT_AGENT_SOCK=\(lifecycle.socketPath); export KISVAULT_AGENT_SOCK;")
                Terminal.note("agent started (pid \(pid)), serving \(options.path)")
            }
        }
    }
}
