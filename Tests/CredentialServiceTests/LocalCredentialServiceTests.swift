import CredentialService
import Foundation
import KISAPI
import KISMock
import KeyManager
import Testing
import VaultCrypto
import VaultStore
import VaultTestSupport

/// The credential service itself, in process, the way the agent uses it (over a manager
/// someone else owns): what the CLI and the agent both rely on, tested without either.
@Suite struct LocalCredentialServiceTests {
    struct Fixture {
        let dir: String
        let mock: KISMockServer
        let accounts: [MockAccount]
        let client: KISClient
        let vault: UnlockedVault
        let service: LocalCredentialService

        func close() async {
            await service.close()
            await client.shutdown()
            await mock.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static func fixture(count: Int = 3) async throws -> Fixture {
        _ = TestLogging.warningsOnly
        let dir = NSTemporaryDirectory() + "kisvault-service-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let accounts = MockAccounts.generate(count: count, environment: "real", seed: 51)
        var configuration = MockConfiguration()
        configuration.accounts = accounts
        let mock = try await KISMockServer.start(configuration)
        let vault = try Vault.create(path: dir + "/vault.db", passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting, label: "default", actor: "test")
        _ = try vault.importAccounts(accounts.map { a in
            ImportCandidate(location: a.name, account: NewAccount(
                name: a.name, environment: .real, secrets: AccountSecrets(appkey: SecureBytes(utf8: a.appkey), appsecret: SecureBytes(utf8: a.appsecret))))
        }, update: false, source: "fixture")
        let client = try KISClient(configuration: KISClientConfiguration(endpoints: KISEndpoints(both: mock.baseURL)))
        let manager = KeyManager(vault: vault, client: client, configuration: KeyManagerConfiguration())
        return Fixture(dir: dir, mock: mock, accounts: accounts, client: client, vault: vault,
                       service: LocalCredentialService(manager: manager, handOutNote: "test"))
    }

    @Test func aCredentialIsIssuedOnceThenServedFromTheVault() async throws {
        let f = try await Self.fixture()
        let name = f.accounts[0].name
        let first = try await f.service.credential(.approval, account: name, minTTL: 600)
        let again = try await f.service.credential(.approval, account: name, minTTL: 600)
        #expect(!first.fromCache && again.fromCache && first.value.constantTimeEquals(again.value))
        #expect(f.mock.requests("/oauth2/Approval") == 1)
        let status = try await f.service.status(.approval, tag: nil).first { $0.account == name }
        #expect(status?.expiresAt == Timestamp.string(first.expiresAt))
        await f.close()
    }

    @Test func theServiceClockIsTheVaultsClock() async throws {
        let f = try await Self.fixture(count: 1)
        let clock = try await f.service.clock()
        #expect(abs(clock.timeIntervalSince(MachineClock.now())) < 5, "a file vault: this machine's clock")
        await f.close()
    }

    /// Every way into a bulk run is range-checked before anything acts, and a named account
    /// that does not exist fails the run before any request.
    @Test func bulkRequestsAreCheckedWhereTheyEnter() async throws {
        let f = try await Self.fixture()
        for change in [{ (r: inout BulkRequest) in r.concurrency = 0 }, { $0.rate = .infinity }, { $0.minTTL = 1e300 }, { $0.timeout = -1e300 }] {
            var request = BulkRequest(kind: .approval, mode: .issue)
            request.all = true
            change(&request)
            await #expect(throws: ServiceError.self) { _ = try await f.service.bulk(request) { _ in } }
        }
        var unknown = BulkRequest(kind: .approval, mode: .issue)
        unknown.accounts = [f.accounts[0].name, "nobody"]
        await #expect(throws: VaultError.accountNotFound(name: "nobody")) { _ = try await f.service.bulk(unknown) { _ in } }
        #expect(f.mock.requests("/oauth2/Approval") == 0)
        var all = BulkRequest(kind: .approval, mode: .issue)
        all.all = true
        let results = try await f.service.bulk(all) { _ in }
        #expect(results.count == f.accounts.count && results.allSatisfy { $0.status == .issued })
        await f.close()
    }

    @Test func appCredentialsAreHandedOutAndAudited() async throws {
        let f = try await Self.fixture(count: 1)
        let a = f.accounts[0]
        let app = try await f.service.appCredentials(account: a.name, purpose: .exec)
        #expect(app.appkey.utf8String() == a.appkey && app.appsecret.utf8String() == a.appsecret)
        let audit = try f.vault.vault.auditRecords(account: a.name)
        #expect(audit.contains { $0.action == "exec" && $0.detail.contains("test") }, "\(audit.map(\.action))")
        await #expect(throws: VaultError.accountNotFound(name: "nobody")) { _ = try await f.service.appCredentials(account: "nobody", purpose: .exec) }
        await f.close()
    }
}
