import ArgumentParser
import CredentialService
import Foundation

/// `kisvault vault`: the vault as a whole.
struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault",
        abstract: "Work on a vault as a whole: copy it between a file and PostgreSQL; accept a restore.",
        subcommands: [Copy.self, AcceptRestore.self])

    /// `kisvault vault accept-restore`
    struct AcceptRestore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "accept-restore",
            abstract: "Accept the vault as it now is after a deliberate restore from a backup.",
            usage: "kisvault vault accept-restore [options]",
            discussion: """
                kisvault remembers, per vault, the last row of its audit log this machine has \
                seen, and refuses a vault that ends before it (a file replaced by an older \
                copy, a schema restored from a dump) or that holds another row there. When \
                the restore was meant, this makes the vault as it now is the one seen, and \
                records that in its audit log. Whatever happened after the backup (tokens \
                issued, keyslots removed, accounts edited) is not in the restored vault: a \
                keyslot removed since is back.

                Example:
                  kisvault vault accept-restore
                """)

        @OptionGroup var options: VaultOptions

        func run() throws {
            let (seen, found, accepted) = try options.admin.acceptRestore()
            Terminal.note("accepted the vault as it is: its audit log ended at row \(found)"
                          + (seen.map { " where this machine had seen row \($0)" } ?? "") + "; audit row \(accepted) records the acceptance")
        }
    }

    /// `kisvault vault copy`
    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy a vault, every record verbatim, to a new file or PostgreSQL schema.",
            usage: "kisvault vault copy <source> <dest> [options]",
            discussion: """
                SOURCE and DEST are each a vault file or a postgres:// URL. Nothing is \
                re-encrypted: the copy opens with the same passphrases. DEST must be new (a \
                file that does not exist, or a schema with no tables); it is written in one \
                transaction, then opened again and checked (the counts, the audit chain, every \
                sealed field). The passphrase unlocks SOURCE, to check the copy; the copy is \
                recorded in SOURCE's audit log.

                Example:
                  kisvault vault copy ~/.local/share/kisvault/vault.db 'postgres://kv@db.internal/team?sslmode=verify-full'
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: ArgumentHelp("The vault to copy (a file or a postgres:// URL).", valueName: "source")) var source: String
        @Argument(help: ArgumentHelp("Where the copy goes (a new file or an empty PostgreSQL schema).", valueName: "dest")) var destination: String

        func run() throws {
            let report = try VaultAdmin(path: source, busyTimeout: options.busyTimeout, unlock: options.unlockSource).copy(to: destination)
            if output.json {
                try Terminal.json(report)
            } else {
                Terminal.note("copied \(report.accounts) accounts, \(report.keyslots) keyslots, \(report.credentials) credentials and \(report.auditRows) audit rows to \(destination); the copy checks out")
            }
        }
    }
}
