import ArgumentParser
import Foundation
import CredentialService
import VaultStore

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
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.", completion: Completions.accounts) var account: String
        @OptionGroup var minTTL: MinTTLOptions

        func run() async throws {
            try await GetCredential(kind: .approval).run(options: options, output: output, manager: manager, account: account, minTTL: minTTL.seconds)
        }
    }
}
