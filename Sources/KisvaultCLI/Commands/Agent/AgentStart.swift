import ArgumentParser
import Foundation
import KisvaultAgent
import Logging
import VaultCrypto
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
            let socketPath = socket.path
            let vault = try options.open(.readWrite)
            try AgentPaths.prepareDirectory(for: socketPath)
            if (try? AgentClient.request(socket: socketPath, method: "GET", target: "/v1/status", timeout: 2)) != nil {
                throw AgentError.alreadyRunning(socketPath)
            }
            // Refuse a second agent on this vault before asking for anything.
            let lockFile = options.path + ".agent-lock"
            let probe = open(lockFile, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            guard probe >= 0, flock(probe, LOCK_EX | LOCK_NB) == 0 else {
                if probe >= 0 { close(probe) }
                throw AgentError.alreadyRunning("another agent holds \(lockFile)")
            }
            close(probe)
            let passphrase = try options.passphrase()
            let unlocked = try vault.unlock(passphrase: passphrase, keyslot: options.keyslot)
            if foreground {
                try await serve(unlocked: unlocked, socketPath: socketPath)
            } else {
                try detach(passphrase: passphrase, socketPath: socketPath)
            }
        }

        /// Serves in this process until stopped.
        func serve(unlocked: UnlockedVault, socketPath: String) async throws {
            // The socket is created 0600 (umask 177) in a 0700 directory, never looser for a moment.
            umask(0o177)
            let lockFile = options.path + ".agent-lock"
            let lockFD = open(lockFile, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
                throw AgentError.alreadyRunning("another agent holds \(lockFile)")
            }
            // A socket left by a killed agent: nothing answered above, so it is stale. Only
            // a socket is removed: a --socket naming a file of the user's must not delete it.
            var info = stat()
            if lstat(socketPath, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                    throw AgentError.setup("\(socketPath) exists and is not a socket; refusing to replace it: choose another --socket path")
                }
                unlink(socketPath)
            }
            var logger = Logger(label: "kisvault-agent")
            logger.logLevel = options.verbose ? .info : .notice
            let server = AgentServer(manager: try manager.manager(vault: unlocked), vaultPath: options.path, socketPath: socketPath,
                                     idleLock: idleLock.seconds, maxLock: maxLock.seconds, logger: logger)
            let vaultPath = options.path
            try await server.run {
                // The agent serves whether or not its starter reads this line.
                try? Terminal.out("KISVAULT_AGENT_SOCK=\(socketPath); export KISVAULT_AGENT_SOCK;")
                Terminal.note("agent serving \(vaultPath) on \(socketPath) (pid \(getpid()))")
            }
            _ = lockFD
        }

        /// Starts `kisvault agent start --foreground` in a new session, hands it the
        /// passphrase through a pipe (never argv or the environment), and waits until it answers.
        func detach(passphrase: SecureBytes, socketPath: String) throws {
            var pipeFDs: [Int32] = [0, 0]
            guard pipe(&pipeFDs) == 0 else { throw CLIError.badInput("cannot create a pipe: \(String(cString: strerror(errno)))") }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            var arguments = ["agent", "start", "--foreground", "--vault", options.path, "--socket", socketPath,
                             "--passphrase-fd", "0", "--idle-lock", idleLock.text, "--max-lock", maxLock.text]
            if let keyslot = options.keyslot { arguments += ["--keyslot", keyslot] }
            if manager.noWait { arguments.append("--no-wait") }
            process.arguments = ["--detach-session"] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["KISVAULT_PASSPHRASE"] = nil
            process.environment = environment
            process.standardInput = FileHandle(fileDescriptor: pipeFDs[0], closeOnDealloc: true)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            passphrase.withUnsafeBytes { _ = write(pipeFDs[1], $0.baseAddress!, $0.count) }
            _ = write(pipeFDs[1], "\n", 1)
            close(pipeFDs[1])
            for _ in 0..<200 {
                if (try? AgentClient.request(socket: socketPath, method: "GET", target: "/v1/status", timeout: 1)) != nil {
                    try Terminal.out("KISVAULT_AGENT_SOCK=\(socketPath); export KISVAULT_AGENT_SOCK;")
                    Terminal.note("agent started (pid \(process.processIdentifier)), serving \(options.path)")
                    return
                }
                if !process.isRunning { break }
                usleep(50_000)
            }
            throw CLIError.badInput("the agent did not start; run 'kisvault agent start --foreground --verbose' to see why")
        }
    }
}
