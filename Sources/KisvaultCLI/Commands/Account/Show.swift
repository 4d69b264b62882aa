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

        /// With --reveal, the secrets from a running unlocked agent for this vault (which
        /// audits the hand-out), or nil: unlock here. A masked view is never fetched from the
        /// agent: every hand-out of a secret there is an audited reveal.
        func secretsFromAgent() throws -> AccountSecrets? {
            guard reveal else { return nil }
            switch AgentUse.call("/v1/accounts/\(name)/app-credentials?for=reveal", vaultPath: options.path, options: options) {
            case .answered(let body):
                guard let appkey = body["appkey"] as? String, let appsecret = body["appsecret"] as? String else { return nil }
                return AccountSecrets(appkey: SecureBytes(utf8: appkey), appsecret: SecureBytes(utf8: appsecret),
                                      accountNumber: (body["account_no"] as? String).map(SecureBytes.init(utf8:)),
                                      htsID: (body["hts_id"] as? String).map(SecureBytes.init(utf8:)))
            case .failed(let error):
                throw error
            case .unavailable:
                return nil
            }
        }

        func run() throws {
            // "No such account" before any passphrase is asked.
            let vault = try options.open(reveal ? .readWrite : .readOnly)
            let summary = try vault.account(named: name)
            let secrets = try secretsFromAgent() ?? {
                let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
                let secrets = try unlocked.secrets(of: name)
                if reveal { try unlocked.recordAudit(action: "account.reveal", account: name) }
                return secrets
            }()
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
