import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import KisvaultAgent
import VaultCrypto
import VaultStore

/// `get`: shared by `approval get` and `token get`.
struct GetCredential {
    let kind: CredentialKind

    func run(options: VaultOptions, output: OutputOptions, manager managerOptions: ManagerOptions, account: String, minTTL: TimeInterval) async throws {
        try print(try await obtain(options: options, manager: managerOptions, account: account, minTTL: minTTL), output: output, account: account)
    }

    /// The credential in an agent's answer (`approval_key`/`access_token`, `issued_at`,
    /// `expires_at`, `from_cache`), as every route that hands one out answers.
    func credential(fromAgent body: [String: Any]) throws -> IssuedCredential {
        guard let value = body[kind.jsonField] as? String, let issued = (body["issued_at"] as? String).flatMap(Timestamp.parse),
              let expires = (body["expires_at"] as? String).flatMap(Timestamp.parse) else {
            throw AgentCallError(code: .vaultError, message: "the agent's answer lacks the \(kind.noun)")
        }
        return IssuedCredential(value: SecureBytes(utf8: value), times: CredentialTimes(issuedAt: issued, expiresAt: expires),
                                fromCache: body["from_cache"] as? Bool ?? true)
    }

    /// The credential valid for `minTTL`: from a running agent when one serves this vault,
    /// else from the vault, unlocked here (issued only if needed).
    func obtain(options: VaultOptions, manager managerOptions: ManagerOptions, account: String, minTTL: TimeInterval) async throws -> IssuedCredential {
        let endpoint = kind == .approval ? "approval-key" : "access-token"
        switch AgentUse.call("/v1/accounts/\(account)/\(endpoint)?min_ttl=\(Int(minTTL))", vaultPath: options.path, options: options) {
        case .answered(let body):
            return try credential(fromAgent: body)
        case .failed(let error):
            throw error
        case .unavailable:
            break
        }
        let vault = try options.open(.readWrite)
        _ = try vault.account(named: account)
        let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
        let manager = try managerOptions.manager(vault: unlocked)
        do {
            let issued = try await manager.get(account: account, kind: kind, minTTL: minTTL)
            await manager.client.shutdown()
            return issued
        } catch {
            await manager.client.shutdown()
            throw error
        }
    }

    func print(_ issued: IssuedCredential, output: OutputOptions, account: String) throws {
        // What KIS handed out is checked before it is stored; this catches a value stored
        // by an older kisvault (or sent by an agent) that is not in KIS's shape, before a
        // control character in it reaches a terminal or a script's header.
        let text = issued.value.utf8String()
        guard kind == .approval ? KISShapes.isApprovalKey(text) : KISShapes.isAccessToken(text) else {
            throw CLIError.badInput("the stored \(kind.noun) of '\(account)' is not in KIS's shape (\(issued.value.count) bytes); it was not printed: replace it with 'kisvault \(kind == .approval ? "approval" : "token") rotate \(account)'")
        }
        if output.json {
            let object: [String: Any] = [
                kind.jsonField: text,
                "issued_at": Timestamp.string(issued.times.issuedAt),
                "expires_at": Timestamp.string(issued.times.expiresAt),
                "from_cache": issued.fromCache,
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            try Terminal.out(String(decoding: data, as: UTF8.self))
        } else {
            try Terminal.out(text)
        }
    }
}

/// The account selection of bulk commands: names, `--all` or `--tag`.
struct AccountSelection: ParsableArguments {
    @Argument(help: "Account names.") var accounts: [String] = []
    @Flag(help: "Every account in the vault.") var all = false
    @Option(help: "Every account with this tag.") var tag: String?

    func validate() throws {
        let ways = (accounts.isEmpty ? 0 : 1) + (all ? 1 : 0) + (tag == nil ? 0 : 1)
        guard ways == 1 else { throw ValidationError("name the accounts, or give --all or --tag (exactly one of these)") }
    }

    func resolve(_ vault: Vault) throws -> [String] {
        if !accounts.isEmpty {
            let known = Set(try vault.accountNames())
            if let missing = accounts.first(where: { !known.contains($0) }) { throw VaultError.accountNotFound(name: missing) }
            return accounts
        }
        return try vault.accountNames(tag: tag)
    }
}

/// The options of `issue` and `rotate`.
struct BulkRunOptions: ParsableArguments {
    @Option(help: "Requests to KIS in flight at once.") var concurrency = 16
    @Option(help: ArgumentHelp("Requests per second per KIS host, across all workers.", valueName: "n")) var rate: Double = 1000
    @Flag(help: "Issue even where the stored credential is fresh.") var force = false
    @Flag(name: .customLong("dry-run"), help: "Show what would be issued; contact nobody.") var dryRun = false
    @Flag(help: "No progress display.") var quiet = false
    @Option(name: .customLong("min-ttl"), help: ArgumentHelp("Reissue credentials valid for less than this (default 10m).", valueName: "duration"))
    var minTTL = DurationArgument(seconds: 600, text: "10m")

    func validate() throws {
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
        guard rate > 0 else { throw ValidationError("--rate must be positive") }
    }
}

/// `issue` and `rotate` over a selection: the bulk job.
struct BulkCommand {
    let kind: CredentialKind
    let mode: BulkMode

    func run(options: VaultOptions, output: OutputOptions, manager managerOptions: ManagerOptions,
             selection: AccountSelection, bulk: BulkRunOptions, revokeOld: Bool = false) async throws {
        let vault = try options.open(.readWrite)
        let names = try selection.resolve(vault)
        let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
        let manager = try managerOptions.manager(vault: unlocked, perHostRate: bulk.rate)
        var bulkOptions = BulkOptions(kind: kind, mode: mode)
        bulkOptions.concurrency = bulk.concurrency
        bulkOptions.force = bulk.force
        bulkOptions.dryRun = bulk.dryRun
        bulkOptions.minTTL = bulk.minTTL.seconds
        let progress = BulkProgress(total: names.count)
        let display = ProgressDisplay(progress: progress, label: "\(mode.rawValue) \(kind.noun)s", enabled: !bulk.quiet)
        display.start()
        let results: [BulkItemResult]
        do {
            results = try await manager.bulk(accounts: names, options: bulkOptions, progress: progress)
        } catch {
            display.stop()
            await manager.client.shutdown()
            throw error
        }
        display.stop()
        if revokeOld && kind == .token && !bulk.dryRun {
            for result in results where result.status == .rotated {
                do {
                    if let (current, _) = try unlocked.openCredential(account: result.account, kind: .token) {
                        try await manager.revokePrevious(account: result.account, current: current)
                    }
                } catch {
                    Terminal.note("\(error)")
                }
            }
        }
        await manager.client.shutdown()
        try report(results, output: output)
        let notStored = results.filter { $0.errorCode == "not-stored" }.count
        let notAttempted = results.filter { $0.errorCode == "not-attempted" }.count
        if notStored + notAttempted > 0 {
            let stored = results.filter { $0.status == .issued || $0.status == .rotated }.count
            Terminal.note("the vault could not be written part-way: \(stored) stored, \(notStored) issued at KIS but not stored, \(notAttempted) not attempted; fix the cause (see the report), then run the same command again")
        }
        if results.contains(where: { $0.status == .failed }) {
            let failed = results.filter { $0.status == .failed }.count
            Terminal.note("\(failed) of \(results.count) accounts failed; run the same command again to retry them")
            throw ExitCode(KisvaultExit.partial.rawValue)
        }
    }

    static func errorText(_ result: BulkItemResult) -> String {
        guard let message = result.message, result.status == .failed else { return result.message ?? "" }
        return message
    }

    func report(_ results: [BulkItemResult], output: OutputOptions) throws {
        var summary: [String: Int] = [:]
        for r in results { summary[r.status.rawValue, default: 0] += 1 }
        if output.json {
            struct Report: Encodable { var kind: String; var mode: String; var summary: [String: Int]; var results: [BulkItemResult] }
            try Terminal.json(Report(kind: kind.rawValue, mode: mode.rawValue, summary: summary, results: results))
        } else {
            try Terminal.out(table(["ACCOUNT", "STATUS", "EXPIRES", "ERROR"], results.map {
                [$0.account, $0.status.rawValue, $0.expiresAt ?? "-", Self.errorText($0)]
            }))
            Terminal.note(summary.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        }
    }
}

/// A credential's state as `status` reports it.
enum CredentialState: String, ExpressibleByArgument, CaseIterable, Encodable {
    case fresh, expiring, expired, none, rejected
}

/// `status`: per account, the credential's state; no passphrase needed.
struct StatusCommand {
    let kind: CredentialKind

    func run(options: VaultOptions, output: OutputOptions, tag: String?, names: [String] = [], state wanted: CredentialState? = nil,
             expiringWithin: TimeInterval) throws {
        var snapshots = try options.open(.readOnly).issuanceSnapshots(kind: kind, tag: tag)
        if !names.isEmpty {
            let known = Set(snapshots.map(\.account))
            if let missing = names.first(where: { !known.contains($0) }) { throw VaultError.accountNotFound(name: missing) }
            let selected = Set(names)
            snapshots = snapshots.filter { selected.contains($0.account) }
        }
        let now = ManagerOptions.clock()
        struct Item: Encodable {
            var account: String, environment: String, state: CredentialState
            var issuedAt: String?, expiresAt: String?, errorCode: String?, error: String?
        }
        var items = snapshots.map { s -> Item in
            let state: CredentialState
            if s.rejectedCode != nil { state = .rejected }
            else if let c = s.current {
                let left = c.expiresAt.timeIntervalSince(now)
                state = left <= 0 ? .expired : left < expiringWithin ? .expiring : .fresh
            } else { state = .none }
            // The last error is shown only where it still explains the state: a failed
            // issuance followed by a good one is history, not news.
            let error = state == .fresh || state == .expiring ? nil : s.rejectedMessage ?? s.lastError
            return Item(account: s.account, environment: s.environment.rawValue, state: state,
                        issuedAt: s.current.map { Timestamp.string($0.issuedAt) }, expiresAt: s.current.map { Timestamp.string($0.expiresAt) },
                        errorCode: s.rejectedCode, error: error)
        }
        if let wanted { items = items.filter { $0.state == wanted } }
        if output.json {
            try Terminal.json(items)
        } else {
            try Terminal.out(table(["ACCOUNT", "ENV", "STATE", "ISSUED", "EXPIRES", "ERROR"], items.map {
                [$0.account, $0.environment, $0.state.rawValue, $0.issuedAt ?? "-", $0.expiresAt ?? "-", ($0.errorCode.map { "\($0) " } ?? "") + ($0.error ?? "")]
            }))
            var counts: [CredentialState: Int] = [:]
            for item in items { counts[item.state, default: 0] += 1 }
            Terminal.note(CredentialState.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", "))
        }
    }
}
