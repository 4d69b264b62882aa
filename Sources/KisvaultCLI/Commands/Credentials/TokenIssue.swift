import ArgumentParser
import Foundation
import CredentialService

extension TokenCommand {
    /// `kisvault token issue`
    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "Issue access tokens where missing or not fresh, for many accounts at once.",
            usage: "kisvault token issue (<accounts> ... | --all | --tag <tag>) [options]",
            discussion: "Example:\n  kisvault token issue --tag prod --concurrency 8")
        @OptionGroup var arguments: BulkArguments

        func run() async throws {
            try await BulkCommand(kind: .token, mode: .issue).run(arguments)
        }
    }
}
