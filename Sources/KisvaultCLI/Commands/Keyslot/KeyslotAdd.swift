import ArgumentParser
import CredentialService
import Foundation

extension KeyslotCommand {
    /// `kisvault keyslot add`
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a keyslot that opens the vault with another passphrase.",
            usage: "kisvault keyslot add <label> [options]",
            discussion: """
                Unlock with an existing passphrase; the new one is asked twice on the terminal \
                or read from --new-passphrase-file/--new-passphrase-fd.

                Example:
                  kisvault keyslot add alice
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var newPassphrase: NewPassphraseOptions
        @Argument(help: "The new keyslot's label.") var label: String

        @Option(help: ArgumentHelp("Argon2id strength for the new slot.", valueName: "strength"))
        var kdf: KDFStrength = .moderate

        func run() throws {
            try options.admin.addKeyslot(label: label, kdf: kdf.parameters) { try newPassphrase.read(what: "keyslot '\(label)'") }
            Terminal.note("added keyslot '\(label)'")
        }
    }
}
