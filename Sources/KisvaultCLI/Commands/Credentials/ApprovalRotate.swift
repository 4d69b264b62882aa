import ArgumentParser
import Foundation
import CredentialService

extension ApprovalCommand {
    /// `kisvault approval rotate`
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Issue new approval keys even where the stored ones are fresh.",
            usage: "kisvault approval rotate (<accounts> ... | --all | --tag <tag>) [options]",
            discussion: "Example:\n  kisvault approval rotate --tag prod")
        @OptionGroup var arguments: BulkArguments

        func run() async throws {
            try await BulkCommand(kind: .approval, mode: .rotate).run(arguments)
        }
    }
}
