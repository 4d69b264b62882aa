import ArgumentParser
import Foundation
import KeyManager
import KisvaultAgent
import VaultStore

/// The `kisvault` command tree. The executable's `main` only calls ``Kisvault/main(arguments:)``.
public struct Kisvault: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "kisvault",
        abstract: "Keep KIS Open API appkeys in an encrypted vault and hand out approval keys and tokens.",
        discussion: """
            Exit codes: 0 success, 1 vault damaged/busy/read-only or I/O failure, 2 usage or bad input, \
            3 wrong passphrase or locked, 4 not found, 5 KIS rejected the credentials, \
            6 network or KIS unavailable, 7 partial failure of a bulk run.
            """,
        version: version,
        subcommands: [
            Init.self, Doctor.self, PassphraseCommand.self, KeyslotCommand.self,
            AccountCommand.self, ApprovalCommand.self, TokenCommand.self, Exec.self,
            AgentCommand.self, Lock.self, Unlock.self, AuditCommand.self, VersionCommand.self,
        ]
    )

    public init() {}

    /// Parses `arguments`, runs the command, and returns the process exit code. Every
    /// error is reported on stderr here and nowhere else.
    public static func main(arguments: [String]) async -> Int32 {
        Hardening.apply()
        var arguments = arguments
        AgentLifecycle.enterDetachedSessionIfAsked(&arguments)
        // `help NAME` of a command that does not exist is an error, not the main help.
        if arguments.first == "help", arguments.count > 1, !commandExists(Array(arguments.dropFirst().prefix { !$0.hasPrefix("-") })) {
            Terminal.note("no command '\(arguments.dropFirst().joined(separator: " "))'; see 'kisvault --help' for the commands")
            return KisvaultExit.usage.rawValue
        }
        if let problem = ArgumentLimits.problem(arguments) {
            Terminal.note(problem)
            return KisvaultExit.usage.rawValue
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return KisvaultExit.success.rawValue
        } catch let error as ExitCode {
            return error.rawValue
        } catch {
            if error is CLIError || error is AgentError || error is AgentCallError || ErrorCode.of(error) != nil {
                return report(error).rawValue
            }
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                // Help and --version: data on stdout, checked like every other write.
                do { try Terminal.out(message) } catch { return report(error).rawValue }
                return 0
            }
            if code == .validationFailure {
                Terminal.err(usageMessage(message))
                return KisvaultExit.usage.rawValue
            }
            return report(error).rawValue
        }
    }

    /// True when `path` (`["account", "list"]`) names a command of the tree.
    static func commandExists(_ path: [String]) -> Bool {
        var command: any ParsableCommand.Type = Kisvault.self
        for name in path {
            guard let sub = command.configuration.subcommands.first(where: { $0.configuration.commandName == name }) else { return false }
            command = sub
        }
        return true
    }

    /// argument-parser's usage error with kisvault's `kisvault:` prefix on its first line
    /// (STYLE.md, "Output"), the usage lines after it as they are.
    static func usageMessage(_ message: String) -> String {
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let first = lines.first else { return "kisvault: usage error" }
        let body = first.hasPrefix("Error: ") ? String(first.dropFirst("Error: ".count)) : first
        lines[0] = "kisvault: " + Terminal.escape(body)
        return lines.joined(separator: "\n")
    }
}
