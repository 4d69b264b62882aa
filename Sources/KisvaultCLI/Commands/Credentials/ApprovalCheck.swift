import ArgumentParser
import CredentialService
import Foundation

extension ApprovalCommand {
    /// `kisvault approval check`
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Prove stored approval keys work: open a KIS WebSocket session, register one key, undo it, close.",
            usage: "kisvault approval check (<accounts> ... | --all | --tag <tag>) [options]",
            discussion: """
                For each account: the stored key opens a session at the environment's \
                WebSocket URL, registers the trades of 005930 (H0STCNT0), unregisters and \
                closes, never holding the session longer (KIS allows one per appkey). \
                States: ok, rejected (KIS refused the key), in-use (another session holds \
                this appkey: a bot is connected), unreachable (no session within --timeout), \
                none or expired (nothing to check; 'approval get' issues one). The way to know \
                a key works before market open. Exits 0 when every key is ok; with one \
                account 5 rejected/in-use, 6 unreachable, 4 none/expired; with several, 7.

                Examples:
                  kisvault approval check alpha
                  kisvault approval check --tag desk --format json
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var selection: AccountSelection
        @Option(help: ArgumentHelp("Longest wait for one session's answer.", valueName: "duration"))
        var timeout = DurationArgument(seconds: 10, text: "10s")
        @Option(help: "Sessions open at once (each on its own appkey).") var concurrency = 8

        func validate() throws {
            guard (1...64).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 64") }
            guard timeout.seconds > 0 && timeout.seconds <= 300 else { throw ValidationError("--timeout must be above 0 and at most 5m") }
        }

        func run() async throws {
            let reports = try await Services.with(options, nil) { service in
                let stored = try await service.status(.approval, tag: selection.tag)
                var byName = Dictionary(stored.map { ($0.account, $0) }, uniquingKeysWith: { a, _ in a })
                let names: [String]
                if selection.accounts.isEmpty {
                    names = stored.map(\.account)
                } else {
                    // Named ones must exist: said before any passphrase.
                    for name in selection.accounts where byName[name] == nil { throw VaultError.accountNotFound(name: name) }
                    names = selection.accounts
                }
                byName = byName.filter { names.contains($0.key) }
                return try await service.checkApprovalKeys(names, statuses: byName, concurrency: concurrency, timeout: timeout.seconds)
            }
            if output.json {
                try Terminal.json(reports)
            } else {
                for report in reports {
                    let detail = [report.errorCode, report.message].compactMap { $0 }.joined(separator: " ")
                    try Terminal.out("\(Terminal.escape(report.account)): \(Colour.paint(report.state.rawValue))\(detail.isEmpty ? "" : " (\(Terminal.escape(detail)))")")
                }
            }
            guard reports.contains(where: { $0.state != .ok }) else { return }
            guard reports.count == 1 else { throw CLIError.reported(.partial) }
            if let code = reports[0].code { throw CLIError.reported(code) }
        }
    }
}
