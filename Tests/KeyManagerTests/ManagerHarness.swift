import Foundation
import KISAPI
import KISMock
import KeyManager
import VaultCrypto
import VaultStore
#if canImport(FoundationNetworking)
import FoundationNetworking
import VaultTestSupport
#endif

/// A vault in a temporary directory holding the mock's accounts, a mock on port 0, and a
/// shared clock offset that moves kisvault's clock together with the mock's.
final class ManagerFixture: @unchecked Sendable {
    let dir: String
    let mock: KISMockServer
    let accounts: [MockAccount]
    let vault: UnlockedVault
    private let lock = NSLock()
    private var offset: TimeInterval = 0

    static func make(count: Int = 8, environment: String = "real", configure: (inout MockConfiguration) -> Void = { _ in }) async throws -> ManagerFixture {
        _ = TestLogging.warningsOnly
        let dir = NSTemporaryDirectory() + "kisvault-km-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let accounts = MockAccounts.generate(count: count, environment: environment, seed: 3)
        var configuration = MockConfiguration()
        configuration.accounts = accounts
        configure(&configuration)
        let mock = try await KISMockServer.start(configuration)
        let vault = try Vault.create(path: dir + "/vault.db", passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting, label: "default", actor: "test")
        _ = try vault.importAccounts(accounts.map { a in
            ImportCandidate(location: a.name, account: NewAccount(
                name: a.name, environment: a.environment == "real" ? .real : .mock,
                secrets: AccountSecrets(appkey: SecureBytes(utf8: a.appkey), appsecret: SecureBytes(utf8: a.appsecret))))
        }, update: false, source: "fixture")
        return ManagerFixture(dir: dir, mock: mock, accounts: accounts, vault: vault)
    }

    private init(dir: String, mock: KISMockServer, accounts: [MockAccount], vault: UnlockedVault) {
        self.dir = dir
        self.mock = mock
        self.accounts = accounts
        self.vault = vault
    }

    private func shift(_ seconds: TimeInterval) {
        lock.lock(); offset += seconds; lock.unlock()
    }

    func now() -> Date {
        lock.lock(); defer { lock.unlock() }
        return Date().addingTimeInterval(offset)
    }

    /// Moves both clocks forward.
    func advance(_ seconds: TimeInterval) async throws {
        shift(seconds)
        try await hook("/__mock/clock/advance?seconds=\(seconds)")
    }

    func client(retry: RetryPolicy = RetryPolicy(maxAttempts: 4, baseDelay: 0.01, maxDelay: 0.05, maxTotal: 10), timeout: TimeInterval = 5) throws -> KISClient {
        var configuration = KISClientConfiguration(endpoints: KISEndpoints(both: mock.baseURL))
        configuration.retry = retry
        configuration.requestTimeout = timeout
        return try KISClient(configuration: configuration)
    }

    /// A manager on its own connection to the vault file, as another process would have.
    func manager(tokenInterval: TimeInterval = 60, leaseDuration: TimeInterval = 60, wait: Bool = true, separateConnection: Bool = false,
                 client: KISClient? = nil) throws -> KeyManager {
        var configuration = KeyManagerConfiguration()
        configuration.tokenInterval = tokenInterval
        configuration.leaseDuration = leaseDuration
        configuration.waitForTokenInterval = wait
        configuration.pollInterval = 0.01
        let clock = self
        configuration.now = { clock.now() }
        let unlocked = separateConnection
            ? try Vault.open(path: dir + "/vault.db").unlock(passphrase: SecureBytes(utf8: "pw"))
            : vault
        return KeyManager(vault: unlocked, client: try client ?? self.client(), configuration: configuration)
    }

    func hook(_ path: String, json: String = "{}") async throws {
        var request = URLRequest(url: URL(string: mock.baseURL + path)!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = Data(json.utf8)
        _ = try await URLSession.shared.data(for: request)
    }

    func stats() -> [String: Any] { mock.stats() }

    func requests(_ path: String) -> Int { mock.requests(path) }

    func close() async {
        await mock.stop()
        vault.vault.close()
        try? FileManager.default.removeItem(atPath: dir)
    }
}
