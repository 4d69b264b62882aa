import Foundation
import Hummingbird
import Logging
import NIOCore

/// A fake KIS authentication server, faithful to KIS-API.md: the three OAuth endpoints,
/// both error shapes, the once-a-minute token rule, per-second limits, environment
/// separation, and seeded fault injection. Test hooks live under `/__mock/`.
///
/// ```swift
/// let mock = try await KISMockServer.start(configuration)
/// defer { Task { await mock.stop() } }
/// // point the client at mock.baseURL
/// ```
public final class KISMockServer: Sendable {
    /// The state, for tests that inspect it directly.
    public let state: MockState
    /// The port actually bound (useful with port 0).
    public let port: Int
    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://\(host):\(port)" }
    /// The WebSocket's port, nil when it does not listen.
    public let webSocketPort: Int?
    /// `ws://127.0.0.1:PORT`, nil when the WebSocket does not listen.
    public var webSocketURL: String? { webSocketPort.map { "ws://\(host):\($0)" } }
    let host: String
    private let task: Task<Void, any Error>
    private let webSocketTask: Task<Void, any Error>?

    /// The path `queueError` takes for the WebSocket: the next subscribe frames are
    /// answered with the code.
    public static let webSocketPath = "websocket"

    private init(state: MockState, port: Int, host: String, task: Task<Void, any Error>, webSocket: (port: Int, task: Task<Void, any Error>)?) {
        self.state = state
        self.port = port
        self.host = host
        self.task = task
        webSocketPort = webSocket?.port
        webSocketTask = webSocket?.task
    }

    /// Starts serving and returns once the port is bound.
    /// - Throws: when the address cannot be bound.
    /// What `/__mock/stats` answers, read in process: the one way tests count requests.
    public func stats() -> [String: Any] { state.statsSnapshot() }

    /// Answers the next `count` requests to `path` with KIS's error `code` (what
    /// `POST /__mock/next-error` does, in process).
    public func queueError(_ code: String, path: String? = nil, status: Int = 403, dataShape: Bool = false, count: Int = 1) {
        state.force(.init(path: path, code: code, status: status, dataShape: dataShape, remaining: count))
    }

    /// Revokes `appkey`'s current token, as `/oauth2/revokeP` does; false if it is not.
    public func revoke(appkey: String, token: String) -> Bool { state.revoke(appkey: appkey, token: token) }

    /// True while `token` is a valid token of `appkey` (issued, not expired, not revoked).
    public func isValid(appkey: String, token: String) -> Bool { state.isValid(appkey: appkey, token: token) }

    /// Moves the mock's clock (what `POST /__mock/clock/advance` does, in process).
    public func advanceClock(seconds: TimeInterval) { state.advanceClock(by: seconds) }
    /// The mock's clock: the real one, moved by ``advanceClock(seconds:)``.
    public func now() -> Date { state.now() }

    /// Requests received on `path` (`/oauth2/tokenP`), retries and refusals included.
    public func requests(_ path: String) -> Int {
        (stats()["requests"] as? [String: Int])?[path] ?? 0
    }

    public static func start(_ configuration: MockConfiguration) async throws -> KISMockServer {
        let state = MockState(configuration: configuration)
        let router = Router()
        MockRoutes(state: state).register(on: router)
        var logger = Logger(label: "kis-mock")
        logger.logLevel = .critical
        let (port, task) = try await listen(what: "kis-mock") { onRunning in
            Application(router: router, server: configuration.webSocket ? MockWebSocket.upgrading(state: state) : .http1(),
                        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "kis-mock"),
                        onServerRunning: onRunning, logger: logger)
        }
        guard configuration.webSocket else { return KISMockServer(state: state, port: port, host: configuration.host, task: task, webSocket: nil) }
        do {
            let webSocket = try await MockWebSocket.start(state: state, host: configuration.host, port: configuration.webSocketPort, logger: logger)
            return KISMockServer(state: state, port: port, host: configuration.host, task: task, webSocket: webSocket)
        } catch {
            task.cancel()
            _ = try? await task.value
            throw error
        }
    }

    /// Runs the application `make` builds (handing it the callback for when it listens)
    /// and returns its bound port and the task that runs it.
    static func listen<App: ApplicationProtocol>(what: String, _ make: (@escaping @Sendable (any Channel) async -> Void) -> App) async throws -> (Int, Task<Void, any Error>) {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = make { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        }
        let task = Task {
            defer { continuation.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            _ = try await task.value
            throw MockAccountFileError(description: "\(what) stopped before it was listening")
        }
        return (port, task)
    }

    /// Stops serving and waits until the ports are closed.
    public func stop() async {
        task.cancel()
        webSocketTask?.cancel()
        _ = try? await task.value
        _ = try? await webSocketTask?.value
    }

    /// Waits until the server stops (for the `kis-mock serve` executable).
    public func wait() async throws {
        try await task.value
    }
}
