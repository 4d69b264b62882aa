import ArgumentParser
import Foundation
import CredentialService

extension TokenCommand {
    /// `kisvault token revoke`
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke the stored access token at KIS and forget it.",
            usage: "kisvault token revoke <account> [options]",
            discussion: "Example:\n  kisvault token revoke alpha")
        @OptionGroup var options: VaultOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.", completion: Completions.accounts) var account: String

        func run() async throws {
            let outcome = try await Services.with(options, manager) { try await $0.revokeToken(account: account) }
            if outcome.alreadyInvalid {
                Terminal.note("the access token of '\(account)' was already invalid at KIS (expired or revoked elsewhere); it is forgotten")
            } else {
                Terminal.note("revoked the access token of '\(account)'")
            }
        }
    }
}
