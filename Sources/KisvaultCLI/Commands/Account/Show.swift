import ArgumentParser
import CredentialService
import Foundation

extension AccountCommand {
    /// `kisvault account show`
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one account, its secrets masked unless --reveal.",
            usage: "kisvault account show <name> [options]",
            discussion: "Revealing is recorded in the audit log.\n\nExample:\n  kisvault account show alpha --reveal --format json")

        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account's name.", completion: Completions.accounts) var name: String
        @Flag(help: "Print the appkey, appsecret and account number in full.") var reveal = false

        func run() async throws {
            let (summary, secrets): (AccountInfo, AccountSecrets)
            if reveal {
                // Through a running unlocked agent when there is one (no passphrase), else
                // unlocked here; audited either way. "No such account" comes first.
                (summary, secrets) = try await Services.with(options, nil) { service in
                    let summary = try await service.account(named: name)
                    return (summary, try await service.appCredentials(account: name, purpose: .reveal).secrets)
                }
            } else {
                // A masked view is never fetched from an agent: every hand-out of a secret
                // there is an audited reveal.
                let (account, opened) = try options.admin.secrets(of: name)
                (summary, secrets) = (AccountInfo(account), opened)
            }
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
