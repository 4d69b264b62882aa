import ArgumentParser
import CredentialService
import Foundation

/// `kisvault keyslot`
struct KeyslotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyslot",
        abstract: "Manage keyslots: one passphrase each, for each member of a team.",
        subcommands: [Add.self, List.self, Remove.self])

}
