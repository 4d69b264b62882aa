import ArgumentParser
import Foundation
import CredentialService

extension TokenCommand {
    /// `kisvault token status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show each account's access token state (fresh, expiring, expired, none, rejected); no passphrase needed.",
            usage: "kisvault token status [<accounts> ...] [options]",
            discussion: "Example:\n  kisvault token status --format json")
        @OptionGroup var arguments: StatusArguments

        func run() async throws {
            try await StatusCommand(kind: .token).run(arguments, expiringWithin: 600)
        }
    }
}
