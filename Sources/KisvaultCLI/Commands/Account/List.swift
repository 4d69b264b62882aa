import ArgumentParser
import CredentialService
import Foundation

extension AccountCommand {
    /// `kisvault account list`
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List accounts (names, environments, tags; no passphrase needed).",
            usage: "kisvault account list [options]",
            discussion: "Example:\n  kisvault account list --tag prod --format json")

        @OptionGroup var location: VaultLocation
        var options: VaultOptions { location.options }
        @OptionGroup var output: OutputOptions
        @Option(help: "Only accounts with this tag.", completion: Completions.tags) var tag: String?
        @Option(help: ArgumentHelp("Only accounts of this environment: real or mock.", valueName: "env")) var env: AccountEnvironment?

        func run() throws {
            let accounts = try options.admin.accounts(tag: tag).filter { env == nil || $0.environment == env }
            if output.json {
                struct Item: Encodable { var name: String; var environment: String; var tags: [String]; var createdAt: String; var updatedAt: String }
                try Terminal.json(accounts.map { Item(name: $0.name, environment: $0.environment.rawValue, tags: $0.tags, createdAt: $0.createdAt, updatedAt: $0.updatedAt) })
            } else {
                try Terminal.out(table(["NAME", "ENV", "TAGS", "CREATED"], accounts.map {
                    [$0.name, $0.environment.rawValue, $0.tags.joined(separator: ","), $0.createdAt]
                }))
            }
        }
    }
}
