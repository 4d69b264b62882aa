import ArgumentParser
import Foundation
import CredentialService

extension ApprovalCommand {
    /// `kisvault approval get`
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Print an approval key valid for at least --min-ttl, issuing one only if needed.",
            usage: "kisvault approval get <account> [options]",
            discussion: """
                Prints the key alone on stdout. Many processes asking at once cause one request \
                to KIS; the others read its result.

                Example:
                  KEY=$(kisvault approval get alpha --min-ttl 1h)
                """)
        @OptionGroup var arguments: CredentialArguments

        func run() async throws {
            try await GetCredential(kind: .approval).run(arguments)
        }
    }
}
