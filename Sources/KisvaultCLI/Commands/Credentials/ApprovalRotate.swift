import ArgumentParser
import Foundation
import KeyManager
import CredentialService
import VaultStore

extension ApprovalCommand {
    /// `kisvault approval rotate`
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Issue new approval keys even where the stored ones are fresh.",
            usage: "kisvault approval rotate (<accounts> ... | --all | --tag <tag>) [options]",
            discussion: "Example:\n  kisvault approval rotate --tag prod")
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @OptionGroup var selection: AccountSelection
        @OptionGroup var bulk: BulkRunOptions

        func run() async throws {
            try await BulkCommand(kind: .approval, mode: .rotate).run(options: options, output: output, manager: manager, selection: selection, bulk: bulk)
        }
    }
}
