import ArgumentParser
import CredentialService
import Foundation

extension KeyslotCommand {
    /// `kisvault keyslot list`
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the keyslots and their Argon2id parameters (no passphrase needed).",
            usage: "kisvault keyslot list [options]",
            discussion: "Example:\n  kisvault keyslot list --format json")

        @OptionGroup var location: VaultLocation
        var options: VaultOptions { location.options }
        @OptionGroup var output: OutputOptions

        func run() throws {
            let slots = try options.admin.keyslots()
            if output.json {
                try Terminal.json(slots)
            } else {
                try Terminal.out(table(["LABEL", "KDF", "OPSLIMIT", "MEMLIMIT", "CREATED"], slots.map {
                    [$0.label, $0.kdf.algorithm, String($0.kdf.opslimit), String($0.kdf.memlimit), $0.createdAt]
                }))
            }
        }
    }
}
