import ArgumentParser
import Foundation
import VaultCrypto
import VaultStore

extension AccountCommand {
    /// `kisvault account add`
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add an account; its appkey and appsecret are read from the terminal or standard input.",
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
                                         accountNumber: accountNumber.map(SecureBytes.init(utf8:)), htsID: htsID.map(SecureBytes.init(utf8:)))
            try unlocked.addAccount(NewAccount(name: name, environment: env, secrets: secrets, tags: tags))
            Terminal.note("added account '\(name)' (\(env.rawValue))")
        }
    }

    /// `kisvault account list`
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List accounts (names, environments, tags; no passphrase needed).",
            discussion: "Example:\n  kisvault account list --tag prod --format json")

        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only accounts with this tag.") var tag: String?

        func run() throws {
            let accounts = try options.open(.readOnly).accounts(tag: tag)
            if output.json {
                struct Item: Encodable { var name: String; var environment: String; var tags: [String]; var createdAt: String; var updatedAt: String }
                try Terminal.json(accounts.map { Item(name: $0.name, environment: $0.environment.rawValue, tags: $0.tags, createdAt: $0.createdAt, updatedAt: $0.updatedAt) })
            } else {
                try Terminal.out(table(["NAME", "ENV", "TAGS", "CREATED"], accounts.map {
                    [$0.name, $0.environment.rawValue, $0.tags.joined(separator: ","), $0.createdAt]
                }))
            }
        }
    }

    /// `kisvault account show`
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one account, its secrets masked unless --reveal.",
            discussion: "Revealing is recorded in the audit log.\n\nExample:\n  kisvault account show alpha --reveal --format json")

        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account's name.") var name: String
        @Flag(help: "Print the appkey, appsecret and account number in full.") var reveal = false

        func run() throws {
            let unlocked = try options.unlock(reveal ? .readWrite : .readOnly)
            let summary = try unlocked.vault.account(named: name)
            let secrets = try unlocked.secrets(of: name)
            if reveal { try unlocked.recordAudit(action: "account.reveal", account: name) }
            func show(_ s: SecureBytes?, _ masked: (SecureBytes) -> String) -> String? {
                s.map { reveal ? $0.utf8String() : masked($0) }
            }
            struct Item: Encodable {
                var name: String, environment: String, tags: [String], createdAt: String, updatedAt: String
                var appkey: String, appsecret: String, accountNo: String?, htsId: String?
            }
            let item = Item(
                name: summary.name, environment: summary.environment.rawValue, tags: summary.tags,
                createdAt: summary.createdAt, updatedAt: summary.updatedAt,
                appkey: show(secrets.appkey, mask)!, appsecret: show(secrets.appsecret, mask)!,
                accountNo: show(secrets.accountNumber, maskAccountNumber), htsId: show(secrets.htsID) { _ in "•••" })
            if output.json {
                try Terminal.json(item)
            } else {
                try Terminal.out("""
                    name:        \(item.name)
                    environment: \(item.environment)
                    tags:        \(item.tags.joined(separator: ","))
                    appkey:      \(item.appkey)
                    appsecret:   \(item.appsecret)
                    account no:  \(item.accountNo ?? "-")
                    hts id:      \(item.htsId ?? "-")
                    created:     \(item.createdAt)
                    updated:     \(item.updatedAt)
                    """)
            }
        }
    }
}
