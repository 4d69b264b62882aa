import ArgumentParser
import CredentialService
import Foundation

/// `kisvault init`
struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new vault protected by a passphrase.",
        usage: "kisvault init [options]",
        discussion: """
            Creates the vault file (mode 0600, in a 0700 directory) with one keyslot. On a \
            terminal the passphrase is asked twice; otherwise it comes from --passphrase-file, \
            --passphrase-fd or KISVAULT_PASSPHRASE. An existing file is never overwritten.

            Example:
              kisvault init --vault ~/team/vault.db
            """)

    @OptionGroup var options: VaultOptions

    @Option(help: ArgumentHelp("Argon2id strength: interactive, moderate (about 0.5 s) or sensitive.", valueName: "strength"))
    var kdf: KDFStrength = .moderate

    @Option(help: "Label of the first keyslot.")
    var label = "default"

    func run() throws {
        let path = options.path
        try VaultAdmin.checkCreatable(path: path)
        let passphrase: SecureBytes
        if options.passphraseFD != nil || options.passphraseFile != nil || ProcessInfo.processInfo.environment["KISVAULT_PASSPHRASE"] != nil {
            passphrase = try options.passphrase(creating: true)
        } else {
            passphrase = try askTwice(what: "the new vault")
        }
        guard passphrase.count > 0 else { throw CLIError.emptyPassphrase }
        try VaultAdmin.create(path: path, passphrase: passphrase, kdf: kdf.parameters, label: label, busyTimeout: options.busyTimeout)
        Terminal.note("""
            created vault \(path) with keyslot '\(label)'. Next:
              kisvault account add NAME --env real|mock     (asks the appkey and appsecret)
              kisvault account import ~/KIS/config/kis_devlp.yaml --name NAME
              kisvault approval get NAME                    (then: kisvault agent start)
            """)
    }
}
