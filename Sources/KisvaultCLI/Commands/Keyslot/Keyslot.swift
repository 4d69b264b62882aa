import ArgumentParser
import Foundation
import VaultCrypto
import VaultStore

/// `kisvault keyslot`
struct KeyslotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyslot",
        abstract: "Manage keyslots: one passphrase each, for each member of a team.",
        subcommands: [Add.self, List.self, Remove.self])

    /// `kisvault keyslot add`
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a keyslot that opens the vault with another passphrase.",
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
            let vault = try options.unlock()
            try vault.addKeyslot(label: label, passphrase: try newPassphrase.read(what: "keyslot '\(label)'"), kdf: kdf.parameters)
            Terminal.note("added keyslot '\(label)'")
        }
    }

    /// `kisvault keyslot list`
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the keyslots and their Argon2id parameters (no passphrase needed).",
            discussion: "Example:\n  kisvault keyslot list --format json")

        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let slots = try options.open(.readOnly).keyslots()
            if output.json {
                try Terminal.json(slots)
            } else {
                try Terminal.out(table(["LABEL", "KDF", "OPSLIMIT", "MEMLIMIT", "CREATED"], slots.map {
                    [$0.label, $0.kdf.algorithm, String($0.kdf.opslimit), String($0.kdf.memlimit), $0.createdAt]
                }))
            }
        }
    }

    /// `kisvault keyslot remove`
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove a keyslot (never the last one).",
            discussion: "Example:\n  kisvault keyslot remove bob")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The label of the keyslot to remove.") var label: String

        func run() throws {
            try options.unlock().removeKeyslot(label: label)
            Terminal.note("removed keyslot '\(label)'")
        }
    }
}
