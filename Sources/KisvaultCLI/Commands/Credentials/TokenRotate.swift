import ArgumentParser
import Foundation
import CredentialService

extension TokenCommand {
    /// `kisvault token rotate`
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Issue new access tokens even where the stored ones are fresh.",
            usage: "kisvault token rotate (<accounts> ... | --all | --tag <tag>) [options]",
            discussion: """
                KIS hands back the same token for six hours after an issuance, and refuses a \
                second issuance within a minute (kisvault waits it out unless --no-wait). \
                --revoke-old revokes the previous token once the new one is stored.

                Example:
                  kisvault token rotate alpha --revoke-old
                """)
        @OptionGroup var arguments: BulkArguments
        @Flag(name: .customLong("revoke-old"), help: "Revoke the previous token after the new one is stored.") var revokeOld = false

        func run() async throws {
            try await BulkCommand(kind: .token, mode: .rotate).run(arguments, revokeOld: revokeOld)
        }
    }
}
