import ArgumentParser
import CredentialService
import Foundation

extension AccountCommand {
    /// `kisvault account remove`
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove an account and everything stored for it.",
            usage: "kisvault account remove <name> [options]",
            discussion: "Asks for confirmation on a terminal unless --yes.\n\nExample:\n  kisvault account remove alpha --yes")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The account's name.", completion: Completions.accounts) var name: String
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() throws {
            try options.admin.removeAccount(name) {
                guard !yes else { return }
                guard Terminal.isTerminal(0) else {
                    throw CLIError.declined("refusing to remove '\(name)' without confirmation: pass --yes")
                }
                Terminal.err("Remove account '\(name)' and its stored credentials? Type its name to confirm: ")
                guard readLine(strippingNewline: true) == name else { throw CLIError.declined("not removed: the name did not match") }
            }
            Terminal.note("removed account '\(name)'")
        }
    }
}
