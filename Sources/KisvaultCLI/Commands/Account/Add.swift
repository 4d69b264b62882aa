import ArgumentParser
import CredentialService
import Foundation
import VaultStore

extension AccountCommand {
    /// `kisvault account add`
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add an account; its appkey and appsecret are read from the terminal or standard input.",
            usage: "kisvault account add <name> --env <env> [options]",
            discussion: """
                On a terminal the appkey and appsecret are asked with echo off; otherwise they \
                are the first two lines of standard input. They are never taken as options, \
                which would show them in `ps` and the shell history.

                Example:
                  printf '%s\\n%s\\n' "$APPKEY" "$APPSECRET" | kisvault account add alpha --env real --tag prod
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The account's name in the vault.") var name: String
        @Option(help: ArgumentHelp("The KIS environment: real or mock.", valueName: "env")) var env: AccountEnvironment
        @Option(name: .customLong("account-no"), help: ArgumentHelp("Account number, 12345678-01.", valueName: "number")) var accountNumber: String?
        @Option(name: .customLong("hts-id"), help: ArgumentHelp("HTS user id.", valueName: "id")) var htsID: String?
        @Option(name: .customLong("tag"), help: ArgumentHelp("A tag for bulk selection (repeatable).", valueName: "tag")) var tags: [String] = []

        func validate() throws {
            do { try Names.validate(name, what: "account name") } catch { throw ValidationError(error.description) }
            for tag in tags { do { try Names.validate(tag, what: "tag") } catch { throw ValidationError(error.description) } }
        }

        func run() throws {
            let vault = try options.open(.readWrite)
            if (try? vault.account(named: name)) != nil { throw VaultError.accountExists(name: name) }
            let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
            let (appkey, appsecret) = try SecretInput.credentials(for: name)
            let secrets = AccountSecrets(appkey: appkey, appsecret: appsecret,
                                         accountNumber: accountNumber.map { SecureBytes(utf8: AccountValidation.normalizedAccountNumber($0)) }, htsID: htsID.map(SecureBytes.init(utf8:)))
            try unlocked.addAccount(NewAccount(name: name, environment: env, secrets: secrets, tags: tags))
            Terminal.note("added account '\(name)' (\(env.rawValue))")
        }
    }
}
