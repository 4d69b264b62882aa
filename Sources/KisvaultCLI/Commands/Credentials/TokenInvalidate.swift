import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import KisvaultAgent
import VaultCrypto
import VaultStore

extension TokenCommand {
    /// `kisvault token invalidate`
    struct Invalidate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "invalidate",
            abstract: "Report a token KIS refused; print the token to use now.",
            discussion: """
                For a program that got EGW00121 or EGW00123 with a token from kisvault: the \
                dead token comes on standard input (never as an argument). It is dropped only \
                if it is still the stored one, and the next is issued under the usual single \
                flight, so ten programs reporting the same dead token cause one issuance. \
                Prints the token to use, as 'token get' does.

                Example:
                  printf '%s\\n' "$DEAD_TOKEN" | kisvault token invalidate alpha
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.") var account: String
        @OptionGroup var minTTL: MinTTLOptions

        func run() async throws {
            let dead = try readDeadToken()
            let get = GetCredential(kind: .token)
            var body = Array(#"{"access_token":""#.utf8) + dead.withUnsafeBytes { Array($0) } + Array(#""}"#.utf8)
            defer { body.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
            let target = "/v1/accounts/\(account)/access-token/invalidate?min_ttl=\(Int(minTTL.seconds))"
            switch AgentUse.call(target, method: "POST", body: body, vaultPath: options.path, options: options) {
            case .answered(let answer):
                try get.print(try get.credential(fromAgent: answer), output: output, account: account)
                return
            case .failed(let error):
                throw error
            case .unavailable:
                break
            }
            let vault = try options.open(.readWrite)
            _ = try vault.account(named: account)
            let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
            let keyManager = try manager.manager(vault: unlocked)
            let result: (dropped: Bool, IssuedCredential)
            do {
                result = try await keyManager.invalidate(account: account, token: dead, minTTL: minTTL.seconds)
            } catch {
                await keyManager.client.shutdown()
                throw error
            }
            await keyManager.client.shutdown()
            options.debug(result.dropped ? "the reported token was the stored one: dropped, the next one issued"
                                         : "the reported token was no longer the stored one: nothing dropped")
            try get.print(result.1, output: output, account: account)
        }

        /// The dead token: the first line of standard input (or asked with echo off on a
        /// terminal), in KIS's shape.
        func readDeadToken() throws -> SecureBytes {
            let token: SecureBytes
            if Terminal.isTerminal(0) {
                guard let typed = try SecretInput.prompt("dead access token of \(account): ") else { throw CLIError.noPassphrase }
                token = typed
            } else {
                guard !StandardStreams.wasClosed(0) else {
                    throw CLIError.badInput("standard input is closed; pipe the dead token of '\(account)' in on standard input")
                }
                do { token = SecretInput.firstLine(try SecretInput.readAll(fd: 0, source: "standard input")) } catch {
                    throw CLIError.badInput("account '\(account)': \(error.description)")
                }
            }
            guard KISShapes.isAccessToken(token.utf8String()) else {
                throw CLIError.badInput("account '\(account)': what came on standard input is not an access token (\(token.count) bytes); pipe the token KIS refused")
            }
            return token
        }
    }
}
