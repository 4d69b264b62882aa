import ArgumentParser
import CredentialService
import Foundation

/// `kisvault doctor`
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the vault's format, keyslots, file modes, integrity and every sealed field.",
        usage: "kisvault doctor [options]",
        discussion: """
            Without --skip-unlock the vault is unlocked so that every sealed field of every \
            account is opened and the audit chain verified; accounts whose data fails to \
            authenticate are named. Exits 1 if any check fails.

            Example:
              kisvault doctor --format json
            """)

    @OptionGroup var options: VaultOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Only run the checks that need no passphrase.")
    var skipUnlock = false

    func run() throws {
        let checks = try options.admin.doctor(unlocking: !skipUnlock)
        if output.json {
            try Terminal.json(checks)
        } else {
            try Terminal.out(table(["CHECK", "STATUS", "DETAIL"], checks.map { [$0.check, $0.status.rawValue, $0.detail] }))
        }
        if checks.contains(where: { $0.status == .fail }) {
            Terminal.note("some checks failed; see above")
            throw CLIError.reported(.vaultError)
        }
    }
}
