import ArgumentParser
import CredentialService
import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

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

        enum State: String, Codable { case ok, invalid, expired }

        struct Report: Codable {
            var account: String
            var state: State
            var errorCode: String?
            var reissued: Bool
            var expiresAt: String?
        }

        func run() async throws {
            let report = try await Services.with(options, manager) { service in
                // No such account, or no token, is said before any passphrase.
                _ = try await service.account(named: account)
                guard let stored = try await service.status(.token, tag: nil).first(where: { $0.account == account }),
                      stored.expiresAt != nil else {
                    throw CLIError.notFound("no access token is stored for '\(account)': issue one with 'kisvault token get \(account)'")
                }
                let app = try await service.appCredentials(account: account, purpose: .check, detail: reissue ? "reissue" : "")
                let client = try KISClient(configuration: KISClientConfiguration(endpoints: service.kisURLs.endpoints))
                do {
                    let report = try await check(service, stored: stored, app: app, client: client)
                    await client.shutdown()
                    return report
                } catch {
                    await client.shutdown()
                    throw error
                }
            }
            if output.json {
                try Terminal.json(report)
            } else {
                let code = report.errorCode.map { " (\($0))" } ?? ""
                try Terminal.out("\(Terminal.escape(account)): \(report.reissued ? "reissued, " : "")\(Colour.paint(report.state.rawValue))\(code)")
            }
            if report.state != .ok { throw CLIError.reported(.kisRejected) }
        }

        /// Checks the stored token and, with --reissue, replaces a dead one and checks that.
        func check(_ service: Services, stored status: CredentialStatus, app: AppCredentials, client: KISClient) async throws -> Report {
            // The stored token as it is: 0 s asked for, so one past its stored end is
            // replaced only by the reissue below.
            let end = status.expiresAt.flatMap(Timestamp.parse) ?? .distantPast
            var answer: CredentialAnswer?
            var state = State.expired, code: String? = nil
            if end > (try await service.clock()) {
                let current = try await service.credential(.token, account: account, minTTL: 0)
                answer = current
                (state, code) = try await ask(client, app: app, token: try current.checkedText(account: account))
            }
            guard reissue, state != .ok else {
                return Report(account: account, state: state, errorCode: code, reissued: false, expiresAt: status.expiresAt)
            }
            let next: CredentialAnswer
            if let answer {
                next = try await service.invalidateToken(account: account, deadToken: answer.value, minTTL: minTTL.seconds)
            } else {
                next = try await service.credential(.token, account: account, minTTL: minTTL.seconds)
            }
            let (after, afterCode) = try await ask(client, app: app, token: try next.checkedText(account: account))
            return Report(account: account, state: after, errorCode: afterCode, reissued: true, expiresAt: Timestamp.string(next.expiresAt))
        }

        /// What KIS says of `token`: ok, or why not; any other failure is thrown.
        func ask(_ client: KISClient, app: AppCredentials, token: String) async throws -> (State, String?) {
            do {
                try await client.checkToken(environment: app.environment == .real ? .real : .mock, appkey: app.appkey.utf8String(), secret: app.appsecret.utf8String(), token: token)
                return (.ok, nil)
            } catch where error.kind == .tokenInvalid {
                return (error.code == "EGW00123" ? .expired : .invalid, error.code)
            } catch {
                throw KeyManagerError.kis(account: account, error)
            }
        }
    }
}
