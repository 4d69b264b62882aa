import ArgumentParser
import Foundation
import CredentialService

extension ApprovalCommand {
    /// `kisvault approval issue`
    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "Issue approval keys where missing or not fresh, for many accounts at once.",
            usage: "kisvault approval issue (<accounts> ... | --all | --tag <tag>) [options]",
            discussion: """
                Accounts already fresh are skipped unless --force. Each key is committed as it \
                lands; a killed run loses nothing committed, and running it again finishes the rest. \
                Exits 7 if any account failed.

                Example:
                  kisvault approval issue --all --concurrency 32 --format json
                """)
        @OptionGroup var arguments: BulkArguments

        func run() async throws {
            try await BulkCommand(kind: .approval, mode: .issue).run(arguments)
        }
    }
}
