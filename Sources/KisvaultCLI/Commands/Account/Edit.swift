import ArgumentParser
import CredentialService
import Foundation

extension AccountCommand {
    /// `kisvault account edit`
    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "edit",
            abstract: "Change an account's environment, account number, HTS id, tags or credentials.",
            usage: "kisvault account edit <name> [options]",
            discussion: """
                --rotate-secret reads a new appkey and appsecret as 'account add' does.

                Example:
                  kisvault account edit alpha --add-tag prod --remove-tag test
                  printf '%s\\n%s\\n' "$NEWKEY" "$NEWSECRET" | kisvault account edit alpha --rotate-secret
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The account's name.", completion: Completions.accounts) var name: String
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
            try options.admin.editAccount(name) {
                var changes = AccountChanges()
                changes.environment = env
                if clearAccountNumber || accountNumber != nil { changes.setAccountNumber(accountNumber) }
                if clearHTSID { changes.htsID = .some(nil) } else if let htsID { changes.htsID = SecureBytes(utf8: htsID) }
                changes.addTags = addTags
                changes.removeTags = removeTags
                if rotateSecret { changes.credentials = try SecretInput.credentials(for: name) }
                return changes
            }
            Terminal.note("updated account '\(name)'")
        }
    }
}
