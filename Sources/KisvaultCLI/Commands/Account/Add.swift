import ArgumentParser
import CredentialService
import Foundation

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
            try options.admin.addAccount(name: name, environment: env, tags: tags) {
                let (appkey, appsecret) = try SecretInput.credentials(for: name)
                return AccountSecrets(appkey: appkey, appsecret: appsecret, typedAccountNumber: accountNumber, htsID: htsID)
            }
            Terminal.note("added account '\(name)' (\(env.rawValue))")
        }
    }
}
