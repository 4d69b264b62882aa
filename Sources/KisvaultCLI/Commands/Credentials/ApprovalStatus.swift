import ArgumentParser
import Foundation
import CredentialService
import VaultStore

extension ApprovalCommand {
    /// `kisvault approval status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show each account's approval key state (fresh, expiring, expired, none, rejected); no passphrase needed.",
            usage: "kisvault approval status [<accounts> ...] [options]",
            discussion: "Example:\n  kisvault approval status --tag prod --format json")
        @OptionGroup var location: VaultLocation
        var options: VaultOptions { location.options }
        @OptionGroup var output: OutputOptions
        @Option(help: "Only accounts with this tag.", completion: Completions.tags) var tag: String?
        @Option(help: ArgumentHelp("Only accounts in this state: fresh, expiring, expired, none or rejected.", valueName: "state"))
        var state: CredentialState?
        @Argument(help: "Only these accounts (default: all).", completion: Completions.accounts) var accounts: [String] = []

        func run() async throws {
            try await StatusCommand(kind: .approval).run(options: options, output: output, tag: tag, names: accounts, state: state, expiringWithin: 600)
        }
    }
}
