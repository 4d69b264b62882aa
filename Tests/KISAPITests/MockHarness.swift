import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KISAPI
import KISMock
import VaultTestSupport

/// Starts an in-process `KISMock` on port 0 for one test and stops it afterwards.
func withMock<T>(
    accounts: Int = 4, configure: (inout MockConfiguration) -> Void = { _ in },
    retry: RetryPolicy = RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05, maxTotal: 5),
    timeout: TimeInterval = 5,
    _ body: (KISMockServer, KISClient, [MockAccount]) async throws -> T
) async throws -> T {
    _ = TestLogging.warningsOnly
    var configuration = MockConfiguration()
    // Real accounts first: their per-second limit (20) leaves room for the several quick
    // calls most tests make; the mock accounts' limit of 2 is exercised on purpose.
    let list = MockAccounts.generate(count: accounts, environment: "real", prefix: "live", seed: 8)
        + MockAccounts.generate(count: accounts, environment: "mock", seed: 7)
    configuration.accounts = list
    configure(&configuration)
    let mock = try await KISMockServer.start(configuration)
    var clientConfiguration = KISClientConfiguration(endpoints: KISEndpoints(both: mock.baseURL))
    clientConfiguration.retry = retry
    clientConfiguration.requestTimeout = timeout
    let client = try KISClient(configuration: clientConfiguration)
    do {
        let result = try await body(mock, client, list)
        await client.shutdown()
        await mock.stop()
        return result
    } catch {
        await client.shutdown()
        await mock.stop()
        throw error
    }
}

extension KISMockServer {
    /// POSTs a test hook.
    func hook(_ path: String, json: String = "{}") async throws {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = Data(json.utf8)
        _ = try await URLSession.shared.data(for: request)
    }

    /// Queues an error for the next `count` requests.
    func queueError(_ code: String, status: Int = 403, shape: String = "oauth", count: Int = 1) async throws {
        try await hook("/__mock/next-error", json: #"{"code": "\#(code)", "status": \#(status), "shape": "\#(shape)", "count": \#(count)}"#)
    }

    func advance(seconds: Double) async throws {
        try await hook("/__mock/clock/advance?seconds=\(seconds)")
    }

}

/// Asserts that an error's text carries none of the secrets.
func leaks(_ error: KISError, _ secrets: [String]) -> Bool {
    let text = error.description + error.message
    return secrets.contains { !$0.isEmpty && text.contains($0) }
}

/// Waits (polling every 20 ms, at most `seconds`) until `condition` holds: the mock counts a
/// request when its handler starts, which can be a moment after the client gave up on it.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    return condition()
}
