import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

/// `kisvault approval`
struct ApprovalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approval",
        abstract: "Hand out, issue and rotate WebSocket approval keys.",
        subcommands: [Get.self, Issue.self, Rotate.self, Status.self])

    /// `kisvault approval get`
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Print an approval key valid for at least --min-ttl, issuing one only if needed.",
            discussion: """
                Prints the key alone on stdout. Many processes asking at once cause one request \
                to KIS; the others read its result.

                Example:
                  KEY=$(kisvault approval get alpha --min-ttl 1h)
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.") var account: String
        @OptionGroup var minTTL: MinTTLOptions

        func run() async throws {
            try await GetCredential(kind: .approval).run(options: options, output: output, manager: manager, account: account, minTTL: minTTL.seconds)
        }
    }

    /// `kisvault approval issue`
    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "Issue approval keys where missing or not fresh, for many accounts at once.",
            discussion: """
                Accounts already fresh are skipped unless --force. Each key is committed as it \
                lands; a killed run loses nothing committed, and running it again finishes the rest. \
                Exits 7 if any account failed.

                Example:
                  kisvault approval issue --all --concurrency 32 --format json
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @OptionGroup var selection: AccountSelection
        @OptionGroup var bulk: BulkRunOptions

        func run() async throws {
            try await BulkCommand(kind: .approval, mode: .issue).run(options: options, output: output, manager: manager, selection: selection, bulk: bulk)
        }
    }

    /// `kisvault approval rotate`
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Issue new approval keys even where the stored ones are fresh.",
            discussion: "Example:\n  kisvault approval rotate --tag prod")
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @OptionGroup var selection: AccountSelection
        @OptionGroup var bulk: BulkRunOptions

        func run() async throws {
            try await BulkCommand(kind: .approval, mode: .rotate).run(options: options, output: output, manager: manager, selection: selection, bulk: bulk)
        }
    }

    /// `kisvault approval status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show each account's approval key state (fresh, expiring, expired, none, rejected); no passphrase needed.",
            discussion: "Example:\n  kisvault approval status --tag prod --format json")
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only accounts with this tag.") var tag: String?

        func run() throws {
            try StatusCommand(kind: .approval).run(options: options, output: output, tag: tag, expiringWithin: 600)
        }
    }
}
