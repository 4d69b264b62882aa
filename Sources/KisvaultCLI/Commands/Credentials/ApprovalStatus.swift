import ArgumentParser
import Foundation
import CredentialService

extension ApprovalCommand {
    /// `kisvault approval status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show each account's approval key state (fresh, expiring, expired, none, rejected); no passphrase needed.",
            usage: "kisvault approval status [<accounts> ...] [options]",
            discussion: "Example:\n  kisvault approval status --tag prod --format json")
        @OptionGroup var arguments: StatusArguments

        func run() async throws {
            try await StatusCommand(kind: .approval).run(arguments, expiringWithin: 600)
        }
    }
}
