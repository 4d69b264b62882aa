import ArgumentParser
import Foundation
import VaultCrypto
import VaultStore

extension AccountCommand {
    /// `kisvault account rename`
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rename",
            abstract: "Rename an account.",
            discussion: "Example:\n  kisvault account rename alpha alpha-main")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The current name.") var old: String
        @Argument(help: "The new name.") var new: String

        func run() throws {
            try options.unlock().renameAccount(old, to: new)
            Terminal.note("renamed account '\(old)' to '\(new)'")
        }
    }
}
