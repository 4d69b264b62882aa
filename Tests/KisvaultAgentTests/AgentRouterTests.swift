import CredentialService
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KISAPI
import KISMock
import KeyManager
import Logging
import NIOCore
import Testing
import VaultCrypto
import VaultStore
import VaultTestSupport
@testable import KisvaultAgent

/// The agent's router in process (Hummingbird's router test framework): every route's
/// answer is the Codable type the typed client decodes, every error the code's status, and
/// no socket, subprocess or sleep is involved. (The peer check needs a real socket; the
/// end-to-end tests cover it.)
@Suite struct AgentRouterTests {
    /// A vault of three mock accounts, a mock on port 0, and the agent's state over them.
    final class Fixture: @unchecked Sendable {
        let dir: String
        let mock: KISMockServer
        let accounts: [MockAccount]
        let state: AgentState
        let client: KISClient
        let vaultPath: String

        init() async throws {
            dir = NSTemporaryDirectory() + "kisvault-router-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let accounts = MockAccounts.generate(count: 3, environment: "mock", seed: 11)
            self.accounts = accounts
            var configuration = MockConfiguration()
            configuration.accounts = accounts
            configuration.perSecondLimitMock = 1000
            _ = TestLogging.warningsOnly
            mock = try await KISMockServer.start(configuration)
            vaultPath = dir + "/vault.db"
            let vault = try Vault.create(path: vaultPath, passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting, label: "default", actor: "test")
            _ = try vault.importAccounts(accounts.map { a in
                ImportCandidate(location: a.name, account: NewAccount(
                    name: a.name, environment: .mock, secrets: AccountSecrets(appkey: SecureBytes(utf8: a.appkey), appsecret: SecureBytes(utf8: a.appsecret)),
                    tags: a.name == accounts[0].name ? ["first"] : []))
            }, update: false, source: "fixture")
            client = try KISClient(configuration: KISClientConfiguration(endpoints: KISEndpoints(both: mock.baseURL)))
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            state = AgentState(manager: KeyManager(vault: vault, client: client), vaultPath: vaultPath, idleLock: nil, maxLock: nil, logger: logger)
        }

        /// Runs `body` with a fixture, torn down on every path.
        static func with(_ body: (Fixture) async throws -> Void) async throws {
            let f = try await Fixture()
            do {
                try await body(f)
            } catch {
                await f.close()
                throw error
            }
            await f.close()
        }

        func close() async {
            state.lockNow(reason: "test over")
            await client.shutdown()
            await mock.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }

        /// Runs `body` against the router.
        func test(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
            let app = Application(router: AgentRoutes(state: state, stopper: Stopper()).router(peerCheck: false))
            try await app.test(.router, body)
        }

        func audit() throws -> [AuditRecord] { try Vault.open(path: vaultPath, mode: .readOnly).auditRecords() }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
    }

    @Test func statusAccountsAndCredentialsAreTheTypedAnswers() async throws {
        try await Fixture.with { f in
            let name = f.accounts[0].name
            try await f.test { client in
                try await client.execute(uri: "/v1/status", method: .get) { response in
                    #expect(response.status == .ok)
                    let status = try Self.decode(AgentStatusAnswer.self, response)
                    #expect(!status.locked && status.vault == f.vaultPath && status.kisURLs.mock == f.mock.baseURL)
                    // Absent values are null, not left out (docs/CLI.md).
                    #expect(String(buffer: response.body).contains("\"lock_reason\":null"))
                    #expect(response.headers[HTTPField.Name("x-kisvault-vault")!] == f.vaultPath)
                }
                try await client.execute(uri: "/v1/accounts?tag=first", method: .get) { response in
                    let list = try Self.decode(AccountList.self, response)
                    #expect(list.accounts.map(\.name) == [name])
                }
                let first = try await client.execute(uri: "/v1/accounts/\(name)/approval-key?min_ttl=600", method: .get) { response in
                    #expect(response.status == .ok)
                    return try Self.decode(CredentialAnswer.self, response)
                }
                #expect(first.kind == .approval && !first.fromCache && KISShapes.isApprovalKey(first.value.utf8String()))
                let again = try await client.execute(uri: "/v1/accounts/\(name)/approval-key", method: .get) { try Self.decode(CredentialAnswer.self, $0) }
                #expect(again.fromCache && again.value.constantTimeEquals(first.value))
                let token = try await client.execute(uri: "/v1/accounts/\(name)/access-token", method: .get) { try Self.decode(CredentialAnswer.self, $0) }
                let encoded = String(decoding: try JSONEncoder().encode(token), as: UTF8.self)
                #expect(token.kind == .token && encoded.contains("\"access_token\""))
            }
            #expect(f.mock.requests("/oauth2/Approval") == 1 && f.mock.requests("/oauth2/tokenP") == 1)
        }
    }

    @Test func errorsCarryTheirCodeAndStatus() async throws {
        try await Fixture.with { f in
            try await f.test { client in
                func expectError(_ code: ErrorCode, _ status: HTTPResponse.Status, _ uri: String, _ method: HTTPRequest.Method = .get,
                                 headers: HTTPFields = [:], body: String? = nil) async throws {
                    try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
                        #expect(response.status == status, "\(uri)")
                        let answer = try Self.decode(ErrorAnswer.self, response)
                        #expect(answer.error == code, "\(uri)")
                    }
                }
                try await expectError(.notFound, .notFound, "/v1/accounts/nobody/approval-key")
                try await expectError(.badRequest, .badRequest, "/v1/accounts/\(f.accounts[0].name)/access-token?min_ttl=90000")
                try await expectError(.notFound, .notFound, "/v1/no/such/route")
                try await expectError(.badRequest, .badRequest, "/v1/accounts/\(f.accounts[0].name)/access-token/invalidate", .post, body: "{\"nope\": 1}")
                try await expectError(.badRequest, .badRequest, "/v1/bulk", .post, body: "{\"kind\": \"token\"}")
                // A caller aimed at other KIS hosts is refused before any work.
                var other = HTTPFields()
                other[HTTPField.Name("x-kisvault-kis-real")!] = "https://openapi.koreainvestment.com:9443"
                other[HTTPField.Name("x-kisvault-kis-mock")!] = "https://openapivts.koreainvestment.com:29443"
                try await expectError(.kisURLsDiffer, .conflict, "/v1/accounts/\(f.accounts[0].name)/approval-key", headers: other)
                // So is one that names another vault, on every route that acts.
                var elsewhere = HTTPFields()
                elsewhere[HTTPField.Name(AgentHeader.forVault)!] = "file:1:2"
                try await expectError(.vaultDiffers, .conflict, "/v1/accounts/\(f.accounts[0].name)/approval-key", headers: elsewhere)
                try await expectError(.vaultDiffers, .conflict, "/v1/accounts/\(f.accounts[0].name)/access-token/revoke", .post, headers: elsewhere)
                try await expectError(.vaultDiffers, .conflict, "/v1/bulk", .post, headers: elsewhere, body: "{\"kind\": \"token\", \"mode\": \"issue\", \"all\": true}")
                // Locked: 423 until unlocked, and a wrong passphrase keeps it so.
                try await client.execute(uri: "/v1/lock", method: .post) { response in
                    let answer = try Self.decode(LockAnswer.self, response)
                    #expect(answer.locked)
                }
                try await expectError(.locked, .init(code: 423), "/v1/accounts/\(f.accounts[0].name)/approval-key")
                try await expectError(.locked, .init(code: 423), "/v1/unlock", .post, body: "wrong")
                try await client.execute(uri: "/v1/unlock", method: .post, body: ByteBuffer(string: "pw")) { response in
                    let answer = try Self.decode(LockAnswer.self, response)
                    #expect(!answer.locked)
                }
                try await client.execute(uri: "/v1/accounts/\(f.accounts[0].name)/approval-key", method: .get) { #expect($0.status == .ok) }
            }
            #expect(f.mock.requests("/oauth2/Approval") == 1, "only the request after unlocking reached KIS")
        }
    }

    @Test func everyHandOutOfAppCredentialsIsAudited() async throws {
        try await Fixture.with { f in
            let account = f.accounts[1]
            try await f.test { client in
                for (query, action, detail) in [("?for=exec", "exec", "via agent"), ("?for=reveal", "account.reveal", "via agent"),
                                                ("", "account.reveal", "app-credentials via agent")] {
                    let app = try await client.execute(uri: "/v1/accounts/\(account.name)/app-credentials\(query)", method: .get) {
                        try Self.decode(AppCredentials.self, $0)
                    }
                    #expect(app.appkey.utf8String() == account.appkey && app.environment == .mock)
                    let last = try f.audit().last
                    #expect(last?.action == action && last?.detail == detail && last?.account == account.name)
                }
            }
        }
    }

    @Test func bulkStreamsProgressThenResults() async throws {
        try await Fixture.with { f in
            var request = BulkRequest(kind: .approval, mode: .issue)
            request.all = true
            let body = try JSONEncoder().encode(request)
            try await f.test { client in
                try await client.execute(uri: "/v1/bulk", method: .post, body: ByteBuffer(bytes: body)) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "application/x-ndjson")
                    let lines = String(buffer: response.body).split(separator: "\n").map { try? JSONDecoder().decode(BulkStreamLine.self, from: Data($0.utf8)) }
                    #expect(lines.allSatisfy { $0 != nil })
                    let results = try #require(lines.last??.results)
                    #expect(results.map(\.status) == [.issued, .issued, .issued])
                }
                // Again: everything is fresh, nothing is asked of KIS.
                try await client.execute(uri: "/v1/bulk", method: .post, body: ByteBuffer(bytes: body)) { response in
                    let last = String(buffer: response.body).split(separator: "\n").last.map { try? JSONDecoder().decode(BulkStreamLine.self, from: Data($0.utf8)) }
                    #expect(last??.results?.map(\.status) == [.skipped, .skipped, .skipped])
                }
            }
            #expect(f.mock.requests("/oauth2/Approval") == 3)
        }
    }
}
