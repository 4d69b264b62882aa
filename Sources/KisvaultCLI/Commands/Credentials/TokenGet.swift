import ArgumentParser
import Foundation
import CredentialService

extension TokenCommand {
    /// `kisvault token get`
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Print an access token valid for at least --min-ttl, issuing one only if needed.",
            usage: "kisvault token get <account> [options]",
            discussion: """
                Reuses the stored token across scripts and restarts (each real issuance texts the \
                account owner), and never asks KIS twice in a minute for one appkey.

                Example:
                  curl -H "authorization: Bearer $(kisvault token get alpha)" ...
                """)
        @OptionGroup var arguments: CredentialArguments

        func run() async throws {
            try await GetCredential(kind: .token).run(arguments)
        }
    }
}
