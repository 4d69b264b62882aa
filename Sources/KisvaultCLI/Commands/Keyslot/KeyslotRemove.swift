import ArgumentParser
import CredentialService
import Foundation

extension KeyslotCommand {
    /// `kisvault keyslot remove`
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove a keyslot (never the last one).",
            usage: "kisvault keyslot remove <label> [options]",
            discussion: "Example:\n  kisvault keyslot remove bob")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The label of the keyslot to remove.") var label: String

        func run() throws {
            try options.admin.removeKeyslot(label: label)
            Terminal.note("removed keyslot '\(label)'")
        }
    }
}
