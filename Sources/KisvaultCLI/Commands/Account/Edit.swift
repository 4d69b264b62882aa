import ArgumentParser
import Foundation
import VaultCrypto
import VaultStore

extension AccountCommand {
    /// `kisvault account edit`
    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "edit",
            abstract: "Change an account's environment, account number, HTS id, tags or credentials.",
            discussion: """
                --rotate-secret reads a new appkey and appsecret as 'account add' does.

                Example:
                  kisvault account edit alpha --add-tag prod --remove-tag test
                  printf '%s\\n%s\\n' "$NEWKEY" "$NEWSECRET" | kisvault account edit alpha --rotate-secret
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The account's name.") var name: String
        @Option(help: ArgumentHelp("New environment: real or mock.", valueName: "env")) var env: AccountEnvironment?
        @Option(name: .customLong("account-no"), help: ArgumentHelp("New account number.", valueName: "number")) var accountNumber: String?
        @Flag(name: .customLong("clear-account-no"), help: "Remove the account number.") var clearAccountNumber = false
        @Option(name: .customLong("hts-id"), help: ArgumentHelp("New HTS id.", valueName: "id")) var htsID: String?
        @Flag(name: .customLong("clear-hts-id"), help: "Remove the HTS id.") var clearHTSID = false
        @Option(name: .customLong("add-tag"), help: ArgumentHelp("Add a tag (repeatable).", valueName: "tag")) var addTags: [String] = []
        @Option(name: .customLong("remove-tag"), help: ArgumentHelp("Remove a tag (repeatable).", valueName: "tag")) var removeTags: [String] = []
        @Flag(name: .customLong("rotate-secret"), help: "Read a new appkey and appsecret.") var rotateSecret = false

        func validate() throws {
            if accountNumber != nil && clearAccountNumber { throw ValidationError("give --account-no or --clear-account-no, not both") }
            if htsID != nil && clearHTSID { throw ValidationError("give --hts-id or --clear-hts-id, not both") }
            if env == nil && accountNumber == nil && !clearAccountNumber && htsID == nil && !clearHTSID && addTags.isEmpty && removeTags.isEmpty && !rotateSecret {
                throw ValidationError("nothing to change: give --env, --account-no, --hts-id, --add-tag, --remove-tag or --rotate-secret")
            }
        }

        func run() throws {
            let vault = try options.open(.readWrite)
            _ = try vault.account(named: name)
            let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
            var changes = AccountChanges()
            changes.environment = env
            if clearAccountNumber { changes.accountNumber = .some(nil) } else if let accountNumber { changes.accountNumber = SecureBytes(utf8: accountNumber) }
            if clearHTSID { changes.htsID = .some(nil) } else if let htsID { changes.htsID = SecureBytes(utf8: htsID) }
            changes.addTags = addTags
            changes.removeTags = removeTags
            if rotateSecret { changes.credentials = try SecretInput.credentials(for: name) }
            try unlocked.editAccount(name, changes)
            Terminal.note("updated account '\(name)'")
        }
    }

    /// `kisvault account rename`
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rename",
            abstract: "Rename an account.",
            discussion: "Example:\n  kisvault account rename alpha alpha-main")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The current name.") var old: String
        @Argument(help: "The new name.") var new: String

        func run() throws {
            try options.unlock().renameAccount(old, to: new)
            Terminal.note("renamed account '\(old)' to '\(new)'")
        }
    }

    /// `kisvault account remove`
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove an account and everything stored for it.",
            discussion: "Asks for confirmation on a terminal unless --yes.\n\nExample:\n  kisvault account remove alpha --yes")

        @OptionGroup var options: VaultOptions
        @Argument(help: "The account's name.") var name: String
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() throws {
            let vault = try options.open(.readWrite)
            _ = try vault.account(named: name)
            if !yes {
                guard Terminal.isTerminal(0) else {
                    throw CLIError.declined("refusing to remove '\(name)' without confirmation: pass --yes")
                }
                Terminal.err("Remove account '\(name)' and its stored credentials? Type its name to confirm: ")
                guard readLine(strippingNewline: true) == name else { throw CLIError.declined("not removed: the name did not match") }
            }
            try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot).removeAccount(name)
            Terminal.note("removed account '\(name)'")
        }
    }
}
