import ArgumentParser
import CredentialService
import Foundation

/// `kisvault audit`
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read and verify the vault's tamper-evident audit log.",
        subcommands: [List.self, Verify.self])

    /// `kisvault audit list`
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List audit entries, oldest first (no passphrase needed).",
            usage: "kisvault audit list [options]",
            discussion: "Example:\n  kisvault audit list --account alpha --since 2026-11-01")

        @OptionGroup var location: VaultLocation
        var options: VaultOptions { location.options }
        @OptionGroup var output: OutputOptions
        @Option(help: "Only entries about this account.") var account: String?
        @Option(help: ArgumentHelp("Only entries at or after this UTC date or time (2026-11-25 or 2026-11-25T09:00).", valueName: "date"))
        var since: String?

        func validate() throws {
            if let since, Timestamp.parse(since) == nil {
                throw ValidationError("--since '\(since)' is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)")
            }
        }

        func run() throws {
            let records = try options.admin.auditRecords(account: account, since: since.flatMap(Timestamp.parse))
            if output.json {
                try Terminal.json(records)
            } else {
                try Terminal.out(table(["SEQ", "AT", "ACTOR", "KEYSLOT", "ACTION", "ACCOUNT", "OUTCOME", "DETAIL"], records.map {
                    [String($0.seq), $0.at, $0.actor, $0.keyslot ?? "-", $0.action, $0.account ?? "-", $0.outcome, $0.detail]
                }))
            }
        }
    }

    /// `kisvault audit verify`
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Verify the audit chain; finds deleted, altered or reordered entries.",
            usage: "kisvault audit verify [options]",
            discussion: "Needs the passphrase (the chain key derives from the master key). Exits 1 when the chain is broken.\n\nExample:\n  kisvault audit verify")

        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let result = try options.admin.verifyAudit()
            if output.json {
                struct Report: Encodable { var rows: Int; var intact: Bool; var problems: [String] }
                try Terminal.json(Report(rows: result.rows, intact: result.isIntact, problems: result.problems))
            } else if result.isIntact {
                try Terminal.out("audit chain intact: \(result.rows) entries")
            } else {
                try Terminal.out(result.problems.joined(separator: "\n"))
            }
            if !result.isIntact {
                Terminal.note("the audit log was tampered with: \(result.problems.count) problem\(result.problems.count == 1 ? "" : "s")")
                throw CLIError.reported(.vaultError)
            }
        }
    }
}
