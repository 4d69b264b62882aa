import ArgumentParser
import CredentialService
import Foundation

extension TokenCommand {
    /// `kisvault token check`
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Ask KIS whether the stored access token still works, with one cheap data call.",
            usage: "kisvault token check <account> [options]",
            discussion: """
                Calls the current-price quote of one stock (inquire-price, FHKST01010100) with \
                the stored token and reports ok, invalid (EGW00121/EGW00122: revoked, or \
                replaced elsewhere) or expired (EGW00123, or past its stored end). Nothing is \
                issued unless --reissue: then an invalid or expired token is dropped and the \
                next one issued under the usual single flight (as 'token invalidate' does), \
                and the new one is checked too. Exits 0 for ok (or reissued), 5 for \
                invalid/expired, 4 when no token is stored.

                Example:
                  kisvault token check alpha --reissue
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.", completion: Completions.accounts) var account: String
        @Flag(help: "Replace an invalid or expired token (one issuance, single flight).") var reissue = false
        @OptionGroup var minTTL: MinTTLOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let report = try await Services.with(options, manager) { service in
                // No such account, or no token, is said before any passphrase.
                _ = try await service.account(named: account)
                guard let stored = try await service.status(.token, tag: nil).first(where: { $0.account == account }),
                      stored.expiresAt != nil else {
                    throw CLIError.notFound("no access token is stored for '\(account)': issue one with 'kisvault token get \(account)'")
                }
                let app = try await service.appCredentials(account: account, purpose: .check, detail: reissue ? "reissue" : "")
                return try await service.checkToken(account: account, stored: stored, app: app, reissue: reissue, minTTL: minTTL.seconds)
            }
            if output.json {
                try Terminal.json(report)
            } else {
                let code = report.errorCode.map { " (\($0))" } ?? ""
                try Terminal.out("\(Terminal.escape(account)): \(report.reissued ? "reissued, " : "")\(Colour.paint(report.state.rawValue))\(code)")
            }
            if report.state != .ok { throw CLIError.reported(.kisRejected) }
        }
    }
}
