import ArgumentParser
import Foundation
import VaultCrypto
import VaultStore

extension AccountCommand {
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
            // "No such account" before any passphrase is asked.
            let vault = try options.open(reveal ? .readWrite : .readOnly)
            let summary = try vault.account(named: name)
            let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
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
