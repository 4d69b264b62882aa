import ArgumentParser
import CredentialService
import Foundation

/// `kisvault passphrase`
struct PassphraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passphrase",
        abstract: "Manage the passphrase of your keyslot.",
        subcommands: [Change.self])

    /// `kisvault passphrase change`
    struct Change: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "change",
            abstract: "Change the passphrase of one keyslot.",
            usage: "kisvault passphrase change [options]",
            discussion: """
                Unlocks with the current passphrase (the usual sources), then rewraps the \
                master key of that keyslot (or --label) under the new passphrase, which is \
                asked twice on the terminal or read from --new-passphrase-file/--new-passphrase-fd. \
                No other data is re-encrypted.

                Example:
                  kisvault passphrase change --kdf sensitive
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var newPassphrase: NewPassphraseOptions

        @Option(help: "The keyslot to change (default: the one the current passphrase opens).")
        var label: String?

        @Option(help: ArgumentHelp("New Argon2id strength (default: keep the slot's).", valueName: "strength"))
        var kdf: KDFStrength?

        func run() throws {
            let changed = try options.admin.changePassphrase(label: label, kdf: kdf?.parameters) { label in
                try newPassphrase.read(what: "keyslot '\(label)'")
            }
            Terminal.note("changed the passphrase of keyslot '\(changed)'")
        }
    }
}
