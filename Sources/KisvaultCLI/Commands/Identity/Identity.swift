import ArgumentParser
import CredentialService
import Foundation

/// `kisvault identity`
struct IdentityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Make and show X25519 identities: a person's key pair under a passphrase, or a machine's file.",
        subcommands: [New.self, ShowRecipient.self])

    /// `kisvault identity new`
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Make an identity and print its recipient (one line, with a checksum).",
            usage: "kisvault identity new [--output <file>] [--no-passphrase] [options]",
            discussion: """
                The secret key is written to --output (default: $XDG_CONFIG_HOME/kisvault/identity), \
                mode 0600, never over an existing file. It is sealed under a new passphrase \
                (asked twice on the terminal, or --new-passphrase-file/--new-passphrase-fd), \
                unless --no-passphrase makes a machine identity: a file that is the member \
                itself, for a server that must unlock with nobody there. The recipient printed \
                on standard output is public: it is what others know this identity by.

                Examples:
                  kisvault identity new
                  kisvault identity new --no-passphrase --output /etc/kisvault/bot.identity
                """)

        @Option(help: ArgumentHelp("Where to write the identity (default: $XDG_CONFIG_HOME/kisvault/identity).", valueName: "file"), completion: .file())
        var output: String?
        @Flag(name: .customLong("no-passphrase"), help: "A machine identity: the key in clear in a 0600 file.")
        var noPassphrase = false
        @OptionGroup var newPassphrase: NewPassphraseOptions
        @Option(help: ArgumentHelp("Argon2id strength for the passphrase: interactive, moderate or sensitive.", valueName: "strength"))
        var kdf: KDFStrength = .moderate

        func validate() throws {
            if noPassphrase && (newPassphrase.file != nil || newPassphrase.fd != nil) {
                throw ValidationError("--no-passphrase makes an identity without one: give it, or a new passphrase, not both")
            }
        }

        func run() throws {
            let path = output ?? Identities.defaultPath()
            // Refused before a passphrase is asked for nothing.
            if FileManager.default.fileExists(atPath: path) {
                throw CLIError.badInput("\(path) exists; kisvault never replaces an identity: choose another --output, or remove it yourself")
            }
            let passphrase = noPassphrase ? nil : try newPassphrase.read(what: "the identity \(path)")
            let created = try Identities.create(passphrase: passphrase, kdf: kdf.parameters)
            try Identities.write(created.file, to: path)
            try Terminal.out(created.recipient)
            Terminal.note(noPassphrase
                ? "wrote the machine identity \(path) (0600): whoever reads it is this identity; the recipient above is public"
                : "wrote the identity \(path), sealed under its passphrase; the recipient above is public")
        }
    }

    /// `kisvault identity recipient`
    struct ShowRecipient: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "recipient",
            abstract: "Print an identity's recipient again, computed from its key.",
            usage: "kisvault identity recipient [<file>] [options]",
            discussion: """
                A sealed identity's passphrase is asked (or --passphrase-file/--passphrase-fd): \
                the recipient is computed from the key, never read from the file's comment.

                Example:
                  kisvault identity recipient ~/.config/kisvault/identity
                """)

        @Argument(help: ArgumentHelp("The identity file (default: $KISVAULT_IDENTITY, else $XDG_CONFIG_HOME/kisvault/identity).", valueName: "file"),
                  completion: .file())
        var file: String?
        @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("Read the identity's passphrase from the first line of this file.", valueName: "file"))
        var passphraseFile: String?
        @Option(name: .customLong("passphrase-fd"), help: ArgumentHelp("Read the identity's passphrase from this inherited file descriptor.", valueName: "n"))
        var passphraseFD: Int32?

        func run() throws {
            let path = file ?? ProcessInfo.processInfo.environment["KISVAULT_IDENTITY"].flatMap { $0.isEmpty ? nil : $0 } ?? Identities.defaultPath()
            let recipient = try Identities.recipient(ofFile: path) {
                if let passphraseFD { return try SecretInput.passphrase(fd: passphraseFD) }
                if let passphraseFile { return try SecretInput.passphrase(file: passphraseFile) }
                guard let typed = try SecretInput.prompt("Passphrase of the identity \(path): ") else { throw CLIError.noPassphrase }
                return typed
            }
            try Terminal.out(recipient)
        }
    }
}
