import ArgumentParser
import Foundation
import CredentialService

/// What `approval get`, `token get` and `token invalidate` take: one account's credential.
struct CredentialArguments: ParsableArguments {
    @OptionGroup var options: VaultOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var manager: ManagerOptions
    @Argument(help: "The account.", completion: Completions.accounts) var account: String
    @OptionGroup var minTTL: MinTTLOptions
}

/// What `issue` and `rotate` of either kind take: a bulk run over a selection.
struct BulkArguments: ParsableArguments {
    @OptionGroup var options: VaultOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var manager: ManagerOptions
    @OptionGroup var selection: AccountSelection
    @OptionGroup var bulk: BulkRunOptions
}

/// What `approval status` and `token status` take.
struct StatusArguments: ParsableArguments {
    @OptionGroup var location: VaultLocation
    @OptionGroup var output: OutputOptions
    @Option(help: "Only accounts with this tag.", completion: Completions.tags) var tag: String?
    @Option(help: ArgumentHelp("Only accounts in this state: fresh, expiring, expired, none or rejected.", valueName: "state"))
    var state: CredentialState?
    @Argument(help: "Only these accounts (default: all).", completion: Completions.accounts) var accounts: [String] = []
}

/// `get`: shared by `approval get` and `token get`.
struct GetCredential {
    let kind: CredentialKind

    func run(_ arguments: CredentialArguments) async throws {
        let (account, minTTL) = (arguments.account, arguments.minTTL.seconds)
        let answer = try await Services.with(arguments.options, arguments.manager) { try await $0.credential(kind, account: account, minTTL: minTTL) }
        try print(answer, output: arguments.output, account: account)
    }

    func print(_ answer: CredentialAnswer, output: OutputOptions, account: String) throws {
        let text = try answer.checkedText(account: account)
        if output.json {
            try Terminal.json(answer)
        } else {
            try Terminal.out(text)
        }
    }
}

/// The account selection of bulk commands: names, `--all` or `--tag`.
struct AccountSelection: ParsableArguments {
    @Argument(help: "Account names.", completion: Completions.accounts) var accounts: [String] = []
    @Flag(help: "Every account in the vault.") var all = false
    @Option(help: "Every account with this tag.", completion: Completions.tags) var tag: String?

    func validate() throws {
        let ways = (accounts.isEmpty ? 0 : 1) + (all ? 1 : 0) + (tag == nil ? 0 : 1)
        guard ways == 1 else { throw ValidationError("name the accounts, or give --all or --tag (exactly one of these)") }
    }

    /// The selection of a bulk request.
    func apply(to request: inout BulkRequest) {
        request.accounts = accounts
        request.all = all
        request.tag = tag
    }
}

/// The options of `issue` and `rotate`.
struct BulkRunOptions: ParsableArguments {
    @Option(help: "Requests to KIS in flight at once.") var concurrency = 16
    @Option(help: ArgumentHelp("Requests per second per KIS host, across all workers.", valueName: "n")) var rate: Double = 1000
    @Flag(help: "Issue even where the stored credential is fresh.") var force = false
    @Flag(name: .customLong("dry-run"), help: "Show what would be issued; contact nobody.") var dryRun = false
    @Flag(help: "No progress display.") var quiet = false
    @Flag(name: .customLong("all-rows"), help: "On a terminal, list every account, not only those that failed or were skipped.")
    var allRows = false
    @Option(name: .customLong("min-ttl"), help: ArgumentHelp("Reissue credentials valid for less than this.", valueName: "duration"))
    var minTTL = DurationArgument.defaultMinTTL

    func validate() throws {
        guard BulkRequest.concurrencyRange.contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
        guard rate.isFinite, BulkRequest.rateRange.contains(rate) else { throw ValidationError("--rate must be requests per second from 0.001 to 100000, not \(rate)") }
        guard minTTL.seconds < CredentialRules.shortestLifetime else {
            throw ValidationError("--min-ttl \(minTTL) is not shorter than an approval key or access token lives (24h): every account would be issued again")
        }
    }
}

/// `issue` and `rotate` over a selection: the bulk job.
struct BulkCommand {
    let kind: CredentialKind
    let mode: BulkMode

    func run(_ arguments: BulkArguments, revokeOld: Bool = false) async throws {
        let (options, output, manager, selection, bulk) = (arguments.options, arguments.output, arguments.manager, arguments.selection, arguments.bulk)
        var request = BulkRequest(kind: kind, mode: mode)
        selection.apply(to: &request)
        request.concurrency = bulk.concurrency
        request.rate = bulk.rate
        request.force = bulk.force
        request.dryRun = bulk.dryRun
        request.minTTL = bulk.minTTL.seconds
        request.revokeOld = revokeOld
        request.timeout = manager.timeout.seconds
        let display = DisplayBox()
        let label = "\(mode.rawValue) \(kind.noun)s"
        let results: [BulkItemResult]
        // Ctrl-C (or SIGTERM) stops the workers: what landed is committed, the rest is
        // reported not attempted, the partial report printed, exit 130. A second one ends
        // the process at once.
        let run = Task {
            try await Services.with(options, manager) { service in
                try await service.bulk(request) { progress in
                    display.start(ProgressDisplay(progress: progress, label: label, enabled: !bulk.quiet))
                }
            }
        }
        let interrupt = Interrupt {
            // Here, the workers stop taking accounts and what is in flight lands; through
            // an agent, the stream is closed and the agent's run is cancelled.
            if let progress = display.progress, !progress.isRemote { progress.requestStop() } else { run.cancel() }
        }
        defer { interrupt.disarm() }
        do {
            results = try await run.value
        } catch {
            display.stop()
            throw error
        }
        display.stop()
        try report(results, output: output, allRows: bulk.allRows || !Terminal.isTerminal(1))
        let outcome = BulkOutcome(results)
        if interrupt.fired {
            Terminal.note("interrupted: \(outcome.stored) stored, \(outcome.notAttempted) not attempted; run the same command again to finish")
            throw CLIError.interrupted
        }
        if outcome.notStored + outcome.notAttempted > 0 {
            Terminal.note("the vault could not be written part-way: \(outcome.stored) stored, \(outcome.notStored) issued at KIS but not stored, \(outcome.notAttempted) not attempted; fix the cause (see the report), then run the same command again")
        }
        guard let code = outcome.code else { return }
        if outcome.kisUnreachable {
            Terminal.note("KIS could not be reached for any of the \(outcome.total) accounts; check the network and KISVAULT_KIS_* URLs, then run the same command again")
        } else {
            Terminal.note("\(outcome.failed) of \(outcome.total) accounts failed; run the same command again to retry them")
        }
        throw CLIError.reported(code)
    }

    /// The report: JSON whole; as text the rows (with `allRows` every account, else only
    /// those that failed or were skipped), failures that share an error code more than
    /// three times as one line, and the counts last, by status and by error code.
    func report(_ results: [BulkItemResult], output: OutputOptions, allRows: Bool) throws {
        var summary: [String: Int] = [:]
        for r in results { summary[r.status.rawValue, default: 0] += 1 }
        if output.json {
            struct Report: Encodable { var kind: String; var mode: String; var summary: [String: Int]; var results: [BulkItemResult] }
            try Terminal.json(Report(kind: kind.rawValue, mode: mode.rawValue, summary: summary, results: results))
            return
        }
        let failures = Dictionary(grouping: results.filter { $0.status == .failed }) { $0.errorCode ?? "error" }
        let grouped = Set(failures.filter { $0.value.count > 3 }.keys)
        let rows = results.filter { result in
            if result.status == .failed { return !grouped.contains(result.errorCode ?? "error") }
            return allRows || result.status == .skipped
        }
        if !rows.isEmpty {
            try Terminal.out(table(["ACCOUNT", "STATUS", "EXPIRES", "ERROR"], rows.map {
                [$0.account, $0.status.rawValue, $0.expiresAt ?? "-", $0.message ?? ""]
            }, stateColumn: 1))
        }
        for code in grouped.sorted() {
            let group = failures[code] ?? []
            let names = group.prefix(3).map(\.account).joined(separator: ", ")
            try Terminal.out("failed \(code): \(group.count) accounts (\(names), and \(group.count - 3) more): \(group[0].message ?? "")")
        }
        let byStatus = summary.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let byCode = failures.sorted { $0.key < $1.key }.map { "\($0.value.count) \($0.key)" }.joined(separator: ", ")
        Terminal.note("\(results.count) accounts: \(byStatus)" + (byCode.isEmpty ? "" : " (failed: \(byCode))"))
    }
}

/// SIGINT and SIGTERM, while armed: the first runs `action`, a second ends the process.
final class Interrupt: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var sources: [any DispatchSourceSignal] = []

    init(_ action: @escaping @Sendable () -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let first = self.lock.withLock { self.count += 1; return self.count == 1 }
                if first { action() } else { _exit(128 + number) }
            }
            source.resume()
            sources.append(source)
        }
    }

    var fired: Bool { lock.withLock { count > 0 } }

    func disarm() {
        for source in sources { source.cancel() }
        for number in [SIGINT, SIGTERM] { signal(number, SIG_DFL) }
    }
}

/// A credential's state as `status` reports it.
extension CredentialState: ExpressibleByArgument {}

/// `status`: per account, the credential's state; no passphrase needed.
struct StatusCommand {
    let kind: CredentialKind

    func run(_ arguments: StatusArguments, expiringWithin: TimeInterval) async throws {
        try await run(options: arguments.location.options, output: arguments.output, tag: arguments.tag, names: arguments.accounts,
                      state: arguments.state, expiringWithin: expiringWithin)
    }

    func run(options: VaultOptions, output: OutputOptions, tag: String?, names: [String] = [], state wanted: CredentialState? = nil,
             expiringWithin: TimeInterval) async throws {
        // The vault's clock (a team vault's server's), as every decision uses: a listing
        // on a machine a day ahead must not call "expired" what `get` hands out as fresh.
        var (statuses, now) = try await Services.with(options, nil) { (try await $0.status(kind, tag: tag), try await $0.clock()) }
        if !names.isEmpty {
            try VaultError.checkNamed(names, among: Set(statuses.map(\.account)))
            let selected = Set(names)
            statuses = statuses.filter { selected.contains($0.account) }
        }
        struct Item: Encodable {
            var account: String, environment: String, state: CredentialState
            var issuedAt: String?, expiresAt: String?, errorCode: String?, error: String?
        }
        var items = statuses.map { s -> Item in
            let state = s.state(at: now, expiringWithin: expiringWithin)
            // The last error is shown only where it still explains the state: a failed
            // issuance followed by a good one is history, not news.
            let error = state == .fresh || state == .expiring ? nil : s.rejectedMessage ?? s.lastError
            return Item(account: s.account, environment: s.environment.rawValue, state: state,
                        issuedAt: s.issuedAt, expiresAt: s.expiresAt,
                        errorCode: s.rejectedCode, error: error)
        }
        if let wanted { items = items.filter { $0.state == wanted } }
        if output.json {
            try Terminal.json(items)
        } else {
            try Terminal.out(table(["ACCOUNT", "ENV", "STATE", "ISSUED", "EXPIRES", "ERROR"], items.map {
                [$0.account, $0.environment, $0.state.rawValue, $0.issuedAt ?? "-", $0.expiresAt ?? "-", ($0.errorCode.map { "\($0) " } ?? "") + ($0.error ?? "")]
            }, stateColumn: 2))
            var counts: [CredentialState: Int] = [:]
            for item in items { counts[item.state, default: 0] += 1 }
            Terminal.note(CredentialState.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", "))
        }
    }
}

/// The progress display of a bulk run, made once the run knows its size.
final class DisplayBox: @unchecked Sendable {
    private let lock = NSLock()
    private var display: ProgressDisplay?

    func start(_ display: ProgressDisplay) {
        lock.withLock { self.display = display }
        display.start()
    }

    func stop() {
        lock.withLock { display }?.stop()
    }

    /// The run's counters, once it has started.
    var progress: BulkProgress? { lock.withLock { display?.progress } }
}
