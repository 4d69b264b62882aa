import CredentialService
import Foundation
import KISAPI
import KeyManager
import Logging
import Testing
import VaultCrypto
import VaultStore
@testable import KisvaultAgent

/// Idle and maximum-lifetime locks on an injected clock: the test moves time, it never sleeps.
@Suite struct AgentStateClockTests {
    /// A clock the test sets.
    final class TestClock: @unchecked Sendable {
        private let lock = NSLock()
        private var value = Date(timeIntervalSince1970: 1_800_000_000)
        var now: Date { lock.lock(); defer { lock.unlock() }; return value }
        func advance(_ seconds: TimeInterval) { lock.lock(); value += seconds; lock.unlock() }
    }

    func state(idle: TimeInterval?, max: TimeInterval?, clock: TestClock) throws -> (AgentState, String, KISClient) {
        let dir = NSTemporaryDirectory() + "kisvault-clock-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let vault = try Vault.create(path: dir + "/vault.db", passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting,
                                     label: "default", actor: "test")
        let client = try KISClient(configuration: KISClientConfiguration(endpoints: KISEndpoints(both: "http://127.0.0.1:9")))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let state = AgentState(manager: KeyManager(vault: vault, client: client), vaultPath: dir + "/vault.db",
                               idleLock: idle, maxLock: max, logger: logger, now: { clock.now })
        return (state, dir, client)
    }

    @Test func idleLockCountsFromTheLastRequest() async throws {
        let clock = TestClock()
        let (state, dir, client) = try state(idle: 600, max: nil, clock: clock)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        clock.advance(599)
        state.tick()
        #expect(!state.isLocked)
        let manager = try state.begin()
        state.end(manager)
        clock.advance(599)
        state.tick()
        #expect(!state.isLocked, "a request 599 s ago restarts the idle clock")
        clock.advance(1)
        state.tick()
        #expect(state.isLocked && state.lockReason?.contains("idle") == true)
        #expect(throws: ServiceError.self) { _ = try state.begin() }
        await client.shutdown()
    }

    @Test func aRunningRequestIsNeverIdle() async throws {
        let clock = TestClock()
        let (state, dir, client) = try state(idle: 60, max: nil, clock: clock)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let manager = try state.begin()
        clock.advance(3600)
        state.tick()
        #expect(!state.isLocked)
        state.end(manager)
        clock.advance(60)
        state.tick()
        #expect(state.isLocked)
        await client.shutdown()
    }

    @Test func maximumLifetimeLocksWhateverHappens() async throws {
        let clock = TestClock()
        let (state, dir, client) = try state(idle: nil, max: 3600, clock: clock)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for _ in 0..<59 {
            clock.advance(60)
            let manager = try state.begin()
            state.end(manager)
            state.tick()
        }
        #expect(!state.isLocked)
        clock.advance(60)
        state.tick()
        #expect(state.isLocked && state.lockReason?.contains("maximum") == true)
        await client.shutdown()
    }
}
