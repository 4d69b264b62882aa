import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

extension TokenCommand {
    /// `kisvault token revoke`
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke the stored access token at KIS and forget it.",
            discussion: "Example:\n  kisvault token revoke alpha")
        @OptionGroup var options: VaultOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.") var account: String

        func run() async throws {
            let vault = try options.open(.readWrite)
            _ = try vault.account(named: account)
            let outcome: KeyManager.RevokeOutcome
            switch AgentUse.call("/v1/accounts/\(account)/access-token/revoke", method: "POST", vaultPath: options.path, options: options) {
            case .answered(let body):
                outcome = body["already_invalid"] as? Bool == true ? .alreadyInvalid : .revoked
            case .failed(let error):
                throw error
            case .unavailable:
                let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
                let keyManager = try manager.manager(vault: unlocked)
                do {
                    outcome = try await keyManager.revoke(account: account)
                } catch {
                    await keyManager.client.shutdown()
                    throw error
                }
                await keyManager.client.shutdown()
            }
            switch outcome {
            case .revoked: Terminal.note("revoked the access token of '\(account)'")
            case .alreadyInvalid: Terminal.note("the access token of '\(account)' was already invalid at KIS (expired or revoked elsewhere); it is forgotten")
            }
        }
    }
}
