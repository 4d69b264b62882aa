import ArgumentParser
import Foundation
import CredentialService

/// The `kisvault` command tree. The executable's `main` only calls ``Kisvault/main(arguments:)``.
public struct Kisvault: AsyncParsableCommand {
    public static let version = kisvaultVersion

    public static let configuration = CommandConfiguration(
        commandName: "kisvault",
        abstract: "Keep KIS Open API appkeys in an encrypted vault and hand out approval keys and tokens.",
        discussion: """
            Examples, one per group:
              vault        kisvault init; kisvault status
              accounts     kisvault account import ~/KIS/config/kis_devlp.yaml
              credentials  kisvault token get alpha; kisvault exec alpha -- ./bot
              agent        eval "$(kisvault agent start)"
              audit        kisvault audit verify

            kisvault --version (or kisvault version) prints the version.

            \(ErrorCode.exitStatusLine)
            """,
        groupedSubcommands: [
            CommandGroup(name: "Vault", subcommands: [Init.self, StatusOverview.self, Doctor.self, VaultCommand.self, PassphraseCommand.self,
                                                     KeyslotCommand.self, VersionCommand.self]),
            CommandGroup(name: "Accounts", subcommands: [AccountCommand.self]),
            CommandGroup(name: "Team", subcommands: [IdentityCommand.self]),
            CommandGroup(name: "Credentials", subcommands: [ApprovalCommand.self, TokenCommand.self, Exec.self]),
            CommandGroup(name: "Agent", subcommands: [AgentCommand.self, Lock.self, Unlock.self]),
            CommandGroup(name: "Audit", subcommands: [AuditCommand.self]),
        ]
    )

    public init() {}

    /// Parses `arguments`, runs the command, and returns the process exit code. Every
    /// error is reported on stderr here and nowhere else.
    public static func main(arguments: [String]) async -> Int32 {
        Hardening.apply()
        // The agent logs through its own logger; every other command through this one.
        if !(arguments.starts(with: ["agent", "start"]) && arguments.contains("--foreground")) { TerminalLogHandler.install(arguments: arguments) }
        Colour.decide(arguments: arguments)
        // The private homes of `exec --kis-sample` runs that were killed before they could
        // remove them (SIGKILL, a crash): gone at the next start of any command.
        if arguments != ["--version"] { SampleHome.sweep(ProcessInfo.processInfo.environment) }
        // --version belongs to the top level only (argument-parser would offer it on every
        // subcommand).
        if arguments == ["--version"] {
            try? Terminal.out(version)
            return ErrorCode.successStatus
        }
                // `help NAME` of a command that does not exist is an error, not the main help.
        if arguments.first == "help", arguments.count > 1, !commandExists(Array(arguments.dropFirst().prefix { !$0.hasPrefix("-") })) {
            Terminal.note("no command '\(arguments.dropFirst().joined(separator: " "))'; see 'kisvault --help' for the commands")
            return ErrorCode.badRequest.exitStatus
        }
        if let typo = unknownCommand(arguments) {
            Terminal.note(typo)
            return ErrorCode.badRequest.exitStatus
        }
        // A variable kisvault acts on, out of range or not a number: refused before
        // anything reads it (a trap, a year-0765 time, or a value silently ignored).
        if let problem = EnvironmentSettings.problems().first {
            Terminal.note(problem)
            return ErrorCode.badRequest.exitStatus
        }
        if let problem = ArgumentLimits.problem(arguments) {
            Terminal.note(problem)
            return ErrorCode.badRequest.exitStatus
        }
        do {
            var command = try leafCommand(arguments) ?? parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return ErrorCode.successStatus
        } catch let error as ExitCode {
            // argument-parser's own (kisvault's statuses all go through report()).
            return error.rawValue
        } catch {
            if error is CLIError || error is AgentError || error is ServiceError || ErrorCode.of(error) != nil {
                return report(suggestingNames(error, arguments))
            }
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                // Help and --version: data on stdout, checked like every other write.
                do { try Terminal.out(message) } catch { return report(error) }
                return 0
            }
            if code == .validationFailure {
                Terminal.err(usageMessage(message))
                return ErrorCode.badRequest.exitStatus
            }
            return report(error)
        }
    }

    /// The commands scripts run most, `approval get` and `token get`, parsed by their own
    /// type: the route to them is two fixed words, and parsing from the root makes
    /// argument-parser reflect over the whole tree first (BENCHMARKS, "thin client": most
    /// of such a command's start). Anything the leaf does not accept as it stands (help, a
    /// bad option) is nil, and the root parses it as always, with the same messages.
    static func leafCommand(_ arguments: [String]) -> (any ParsableCommand)? {
        guard arguments.count >= 3, arguments[1] == "get" else { return nil }
        let rest = Array(arguments.dropFirst(2))
        switch arguments[0] {
        case "approval": return try? ApprovalCommand.Get.parse(rest)
        case "token": return try? TokenCommand.Get.parse(rest)
        default: return nil
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

    /// A message for a command name that is not one (`acount list`, `approval gte`), with
    /// the nearest names; nil when the words before the first option or leaf name commands.
    static func unknownCommand(_ arguments: [String]) -> String? {
        var command: any ParsableCommand.Type = Kisvault.self
        var path = ["kisvault"]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty, !word.hasPrefix("-"), word != "help" else { return nil }
            guard let sub = subcommands.first(where: { $0.configuration.commandName == word }) else {
                let names = subcommands.compactMap { $0.configuration.commandName }
                let near = NearestNames.to(word, among: names, limit: max(1, word.count / 3), most: 1)
                let hint = near.isEmpty ? "the commands are \(names.joined(separator: ", "))" : "did you mean '\((path + [near[0]]).joined(separator: " "))'?"
                return "'\(Terminal.escape(word))' is not a command of '\(path.joined(separator: " "))'; \(hint)"
            }
            command = sub
            path.append(word)
        }
        return nil
    }

    /// An unknown account name, with the nearest names the vault holds (read without a
    /// passphrase): `approval get a-001` when `a-0001` exists. Every command taking account
    /// names gets it here, whether the vault or an agent said the name is unknown.
    static func suggestingNames(_ error: any Error, _ arguments: [String]) -> any Error {
        let name: String
        switch error {
        case VaultError.accountNotFound(let missing):
            name = missing
        case let refusal as ServiceError where refusal.code == .notFound && refusal.message.hasPrefix("no account named '"):
            name = String(refusal.message.dropFirst("no account named '".count).prefix { $0 != "'" })
        default:
            return error
        }
        let given = arguments.firstIndex(of: "--vault").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
            ?? arguments.first { $0.hasPrefix("--vault=") }.map { String($0.dropFirst("--vault=".count)) }
        guard let names = try? VaultAdmin.metadata(path: VaultOptions.path(given: given)).accountNames() else { return error }
        let near = NearestNames.to(name, among: names, limit: max(2, name.count / 3)).map { "'" + $0 + "'" }
        guard !near.isEmpty else { return error }
        return CLIError.notFound("no account named '\(name)'; did you mean \(near.joined(separator: " or "))? (see 'kisvault account list')")
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
