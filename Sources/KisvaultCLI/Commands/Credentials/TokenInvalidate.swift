import ArgumentParser
import Foundation
import CredentialService

extension TokenCommand {
    /// `kisvault token invalidate`
    struct Invalidate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "invalidate",
            abstract: "Report a token KIS refused; print the token to use now.",
            usage: "kisvault token invalidate <account> [options]",
            discussion: """
                For a program that got EGW00121 or EGW00123 with a token from kisvault: the \
                dead token comes on standard input (never as an argument). It is dropped only \
                if it is still the stored one, and the next is issued under the usual single \
                flight, so ten programs reporting the same dead token cause one issuance. \
                Prints the token to use, as 'token get' does.

                Example:
                  printf '%s\\n' "$DEAD_TOKEN" | kisvault token invalidate alpha
                """)
        @OptionGroup var arguments: CredentialArguments

        func run() async throws {
            let dead = try readDeadToken()
            let (account, minTTL) = (arguments.account, arguments.minTTL.seconds)
            let answer = try await Services.with(arguments.options, arguments.manager) {
                try await $0.invalidateToken(account: account, deadToken: dead, minTTL: minTTL)
            }
            try GetCredential(kind: .token).print(answer, output: arguments.output, account: account)
        }

        /// The dead token: the first line of standard input (or asked with echo off on a
        /// terminal), in KIS's shape.
        func readDeadToken() throws -> SecureBytes {
            let account = arguments.account
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
            guard CredentialRules.isAccessToken(token.utf8String()) else {
                throw CLIError.badInput("account '\(account)': what came on standard input is not an access token (\(token.count) bytes); pipe the token KIS refused")
            }
            return token
        }
    }
}
