import ArgumentParser
import Foundation
import VaultStore

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
            // "No such account" (or a taken or invalid new name) before any passphrase is asked.
            let vault = try options.open(.readWrite)
            _ = try vault.account(named: old)
            try Names.validate(new, what: "account name")
            if (try? vault.account(named: new)) != nil { throw VaultError.accountExists(name: new) }
            try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot).renameAccount(old, to: new)
            Terminal.note("renamed account '\(old)' to '\(new)'")
        }
    }
}
