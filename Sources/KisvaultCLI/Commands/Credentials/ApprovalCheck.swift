import ArgumentParser
import CredentialService
import Foundation
import KISAPI
import VaultStore

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

        enum State: String, Codable { case ok, rejected, inUse = "in-use", unreachable, none, expired }

        struct Report: Codable {
            var account: String
            var state: State
            var errorCode: String?
            var message: String?
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
                return try await check(names, statuses: byName, service: service)
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
            switch reports[0].state {
            case .ok: return
            case .rejected, .inUse: throw CLIError.reported(.kisRejected)
            case .unreachable: throw CLIError.reported(.kisUnavailable)
            case .none, .expired: throw CLIError.reported(.notFound)
            }
        }

        /// Each account's check, at most `concurrency` sessions at once, in `names` order.
        func check(_ names: [String], statuses: [String: CredentialStatus], service: Services) async throws -> [Report] {
            // The keys first (one unlock, or the agent), then the sessions.
            var keys: [String: (key: String, url: String)] = [:]
            var reports: [String: Report] = [:]
            let now = try await service.clock()
            for name in names {
                guard let status = statuses[name], let end = status.expiresAt.flatMap(Timestamp.parse) else {
                    reports[name] = Report(account: name, state: .none, message: "no approval key stored")
                    continue
                }
                guard end > now else {
                    reports[name] = Report(account: name, state: .expired, message: "the stored key ended at \(status.expiresAt ?? "?")")
                    continue
                }
                let answer = try await service.credential(.approval, account: name, minTTL: 0)
                keys[name] = (try answer.checkedText(account: name), service.kisURLs.webSocket(status.environment))
            }
            let timeout = timeout.seconds
            try await withThrowingTaskGroup(of: Report.self) { group in
                var pending = names.filter { keys[$0] != nil }.makeIterator()
                func startNext() {
                    guard let name = pending.next(), let (key, url) = keys[name] else { return }
                    group.addTask { Self.report(name, await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: timeout)) }
                }
                for _ in 0..<concurrency { startNext() }
                for try await report in group {
                    reports[report.account] = report
                    startNext()
                }
            }
            return names.compactMap { reports[$0] }
        }

        static func report(_ name: String, _ outcome: KISWebSocketCheck.Outcome) -> Report {
            switch outcome {
            case .ok: Report(account: name, state: .ok)
            case .inUse: Report(account: name, state: .inUse, errorCode: "OPSP8996", message: "another session holds this appkey")
            case .rejected(let code, let message): Report(account: name, state: .rejected, errorCode: code, message: message)
            case .unreachable(let reason): Report(account: name, state: .unreachable, message: reason)
            }
        }
    }
}
