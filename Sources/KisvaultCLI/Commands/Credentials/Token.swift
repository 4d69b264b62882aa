import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

/// `kisvault token`
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Hand out, issue, rotate and revoke REST access tokens.",
        subcommands: [Get.self, Issue.self, Rotate.self, Revoke.self, Status.self])

    /// `kisvault token get`
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Print an access token valid for at least --min-ttl, issuing one only if needed.",
            discussion: """
                Reuses the stored token across scripts and restarts (each real issuance texts the \
                account owner), and never asks KIS twice in a minute for one appkey.

                Example:
                  curl -H "authorization: Bearer $(kisvault token get alpha)" ...
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.") var account: String
        @OptionGroup var minTTL: MinTTLOptions

        func run() async throws {
            try await GetCredential(kind: .token).run(options: options, output: output, manager: manager, account: account, minTTL: minTTL.seconds)
        }
    }

    /// `kisvault token issue`
    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "Issue access tokens where missing or not fresh, for many accounts at once.",
            discussion: "Example:\n  kisvault token issue --tag prod --concurrency 8")
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @OptionGroup var selection: AccountSelection
        @OptionGroup var bulk: BulkRunOptions

        func run() async throws {
            try await BulkCommand(kind: .token, mode: .issue).run(options: options, output: output, manager: manager, selection: selection, bulk: bulk)
        }
    }

    /// `kisvault token rotate`
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Issue new access tokens even where the stored ones are fresh.",
            discussion: """
                KIS hands back the same token for six hours after an issuance, and refuses a \
                second issuance within a minute (kisvault waits it out unless --no-wait). \
                --revoke-old revokes the previous token once the new one is stored.

                Example:
                  kisvault token rotate alpha --revoke-old
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @OptionGroup var selection: AccountSelection
        @OptionGroup var bulk: BulkRunOptions
        @Flag(name: .customLong("revoke-old"), help: "Revoke the previous token after the new one is stored.") var revokeOld = false

        func run() async throws {
            try await BulkCommand(kind: .token, mode: .rotate).run(options: options, output: output, manager: manager, selection: selection, bulk: bulk, revokeOld: revokeOld)
        }
    }

    /// `kisvault token revoke`
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke the stored access token at KIS and forget it.",
            discussion: "Example:\n  kisvault token revoke alpha")
        @OptionGroup var options: VaultOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.") var account: String

        func run() async throws {
            let vault = try options.open(.readWrite)
            _ = try vault.account(named: account)
            let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
            let keyManager = try manager.manager(vault: unlocked)
            do {
                try await keyManager.revoke(account: account)
            } catch {
                await keyManager.client.shutdown()
                throw error
            }
            await keyManager.client.shutdown()
            Terminal.note("revoked the access token of '\(account)'")
        }
    }

    /// `kisvault token status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show each account's access token state (fresh, expiring, expired, none, rejected); no passphrase needed.",
            discussion: "Example:\n  kisvault token status --format json")
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only accounts with this tag.") var tag: String?

        func run() throws {
            try StatusCommand(kind: .token).run(options: options, output: output, tag: tag, expiringWithin: 600)
        }
    }
}
