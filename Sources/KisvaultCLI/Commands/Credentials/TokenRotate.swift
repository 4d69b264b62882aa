import ArgumentParser
import Foundation
import KeyManager
import CredentialService
import VaultStore

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
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @OptionGroup var selection: AccountSelection
        @OptionGroup var bulk: BulkRunOptions
        @Flag(name: .customLong("revoke-old"), help: "Revoke the previous token after the new one is stored.") var revokeOld = false

        func run() async throws {
            try await BulkCommand(kind: .token, mode: .rotate).run(options: options, output: output, manager: manager, selection: selection, bulk: bulk, revokeOld: revokeOld)
        }
    }
}
