import ArgumentParser
import CredentialService
import Foundation

extension AccountCommand {
    /// `kisvault account rename`
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rename",
            abstract: "Rename an account.",
            usage: "kisvault account rename <old> <new> [options]",
            discussion: "Example:\n  kisvault account rename alpha alpha-main")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The current name.", completion: Completions.accounts) var old: String
        @Argument(help: "The new name.") var new: String

        func run() throws {
            try options.admin.renameAccount(old, to: new)
            Terminal.note("renamed account '\(old)' to '\(new)'")
        }
    }
}
