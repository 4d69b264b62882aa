import CredentialService
import Foundation
import KISAPI
import KeyManager
import KisvaultAgent
import Logging
import Testing
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The agent in process: connections that send nothing are closed, unknown routes answer
/// in the API's error shape.
@Suite struct AgentConnectionTests {
    /// The server logs its own shutdown as an error; a test has no use for that line.
    static let quiet: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    /// An agent over a fresh vault in a temporary directory; `body` runs while it serves.
    func withAgent(idle: TimeInterval, _ body: @Sendable (String) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "kisvault-agent-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vault = try Vault.create(path: dir + "/vault.db", passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting,
                                     label: "default", actor: "test")
        // Nothing listens on port 9: no request of these tests reaches KIS or leaves loopback.
        let client = try KISClient(configuration: KISClientConfiguration(endpoints: KISEndpoints(both: "http://127.0.0.1:9")))
        let socket = dir + "/run/agent.sock"
        let server = AgentServer(manager: KeyManager(vault: vault, client: client), vaultPath: dir + "/vault.db", socketPath: socket,
                                 idleLock: nil, maxLock: nil, logger: Self.quiet, connectionIdleTimeout: idle)
        let listening = AsyncStream<Void>.makeStream()
        let running = Task { try await server.run { listening.continuation.yield() } }
        for await _ in listening.stream { break }
        do { try await body(socket) } catch { running.cancel(); throw error }
        _ = try? await onThread { try AgentClient.request(socket: socket, method: "POST", target: "/v1/stop") }
        _ = try? await running.value
        await client.shutdown()
    }

    /// Blocking socket work on a thread of its own, off the cooperative pool.
    func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    @Test func idleConnectionsAreClosed() async throws {
        try await withAgent(idle: 0.5) { socket in
            let closedAfter = try await onThread { () -> Double? in
                let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(fd) }
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &address.sun_path) { raw in
                    let bytes = Array(socket.utf8)
                    raw.copyBytes(from: bytes)
                    raw[bytes.count] = 0
                }
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                guard connected == 0 else { return nil }
                // Send nothing; the agent must hang up well before this 10 s bound.
                var tv = timeval(tv_sec: 10, tv_usec: 0)
                _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                let started = Date()
                var byte: UInt8 = 0
                let n = recv(fd, &byte, 1, 0)
                return n == 0 ? Date().timeIntervalSince(started) : nil
            }
            #expect(closedAfter != nil, "the agent kept an idle connection open for 10 s")
        }
    }

    @Test func unknownRoutesAnswerInTheErrorShape() async throws {
        try await withAgent(idle: 30) { socket in
            for (method, target) in [("GET", "/v1/nosuch"), ("GET", "/"), ("DELETE", "/v1/status")] {
                let r = try await onThread { try AgentClient.request(socket: socket, method: method, target: target) }
                #expect(r.status == 404 || r.status == 405, "\(method) \(target): \(r.status)")
                #expect(r.json?["error"] is String && r.json?["message"] is String, "\(method) \(target)")
                #expect(r.headers["x-kisvault-kis-real"] == "http://127.0.0.1:9")
            }
            // A caller aimed at other KIS hosts gets nothing done.
            let other = try await onThread {
                try AgentClient.request(socket: socket, method: "GET", target: "/v1/accounts/x/approval-key",
                                        headers: ["x-kisvault-kis-real": "https://elsewhere.test", "x-kisvault-kis-mock": "https://elsewhere.test"])
            }
            #expect(other.status == 409 && other.json?["error"] as? String == "kis_urls_differ")
        }
    }
}
