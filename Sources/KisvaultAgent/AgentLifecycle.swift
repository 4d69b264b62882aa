import CredentialService
import Foundation
import KISAPI
import KeyManager
import Logging
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// Starting, detaching and stopping an agent: the single-agent lock, the stale socket, the
/// re-executed detached process and the passphrase handed to it through a pipe. The CLI's
/// `agent start` and `agent stop` are thin calls into this.
public struct AgentLifecycle: Sendable {
    public let vaultPath: String
    public let socketPath: String
    /// The listening socket systemd handed this process (socket activation), if it did:
    /// then `socketPath` is the path it is bound to, and the agent neither creates nor
    /// removes anything there.
    public let activation: SocketActivation?

    /// The argument that makes a re-executed kisvault leave the starting terminal's
    /// session (so closing that terminal does not send the agent SIGHUP).
    public static let detachArgument = "--detach-session"

    public init(vaultPath: String, socketPath: String) {
        self.vaultPath = vaultPath
        self.socketPath = socketPath
        activation = nil
    }

    /// The lifecycle of an agent serving the socket systemd handed it.
    public init(vaultPath: String, activation: SocketActivation) {
        self.vaultPath = vaultPath
        socketPath = activation.path
        self.activation = activation
    }

    /// One agent per vault on this machine: beside a vault file; for a team vault, in the
    /// socket's directory, named for the URL.
    var lockFile: String {
        guard VaultKind.of(vaultPath) == .team else { return vaultPath + ".agent-lock" }
        return PathName.directory(of: socketPath) + "/team-" + String(StableHash.fnv1a(vaultPath), radix: 16) + ".agent-lock"
    }

    /// Takes `--detach-session` off the front of `arguments` and starts a new session when
    /// it was there. Called first thing by the executable.
    public static func enterDetachedSessionIfAsked(_ arguments: inout [String]) {
        guard arguments.first == detachArgument else { return }
        arguments.removeFirst()
        _ = setsid()
    }

    /// Refuses when an agent already answers on the socket or holds the vault's agent lock:
    /// checked before anything (a passphrase) is asked. A socket systemd handed over is
    /// this agent's own to answer, so it is not asked.
    /// - Throws: ``AgentError/alreadyRunning(_:)``, ``AgentError/setup(_:)``.
    public func checkNoneRunning() throws(AgentError) {
        if activation == nil {
            try AgentPaths.prepareDirectory(for: socketPath)
            if (try? AgentClient.request(socket: socketPath, method: "GET", target: "/v1/status", timeout: 2)) != nil {
                throw .alreadyRunning(socketPath)
            }
        }
        let probe = open(lockFile, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard probe >= 0, flock(probe, LOCK_EX | LOCK_NB) == 0 else {
            if probe >= 0 { close(probe) }
            throw .alreadyRunning("another agent holds \(lockFile)")
        }
        close(probe)
    }

    /// The vault an agent is to serve, unlocked: it must open, no other agent may serve it
    /// (refused before the passphrase is asked), and the passphrase must open it (checked
    /// here, before any detaching). Answers the passphrase too, for ``detach(closing:executable:arguments:passphrase:environment:)``.
    public func unlock(busyTimeout: Double, with source: UnlockSource) throws -> (vault: UnlockedVault, passphrase: SecureBytes) {
        let vault = try Vault.open(path: vaultPath, mode: .readWrite, busyTimeout: busyTimeout)
        do {
            try checkNoneRunning()
            let passphrase = try source.passphrase()
            let unlocked = try vault.unlock(passphrase: passphrase, keyslot: source.keyslot)
            if let history = source.history { try unlocked.checkHistory(history) }
            return (unlocked, passphrase)
        } catch {
            vault.close()
            throw error
        }
    }

    /// Serves `vault` in this process until stopped (see the other `serve`), with a KIS
    /// client for the environment's URLs (`KISVAULT_KIS_*`) that lives as long as the agent.
    /// - Throws: ``ServiceError`` `bad_request` for KIS URLs kisvault refuses.
    public func serve(vault: UnlockedVault, settings: LocalCredentialService.Settings, idleLock: TimeInterval?, maxLock: TimeInterval?,
                      renewal: RenewalSettings? = nil, metrics metricsSettings: MetricsSettings? = nil, history: HeadMemory? = nil, logger: Logger,
                      onListening: @escaping @Sendable () -> Void) async throws {
        let endpoints: KISEndpoints
        do { endpoints = try KISEndpoints.fromEnvironment() } catch { throw ServiceError(.badRequest, error.description) }
        var clientConfiguration = KISClientConfiguration(endpoints: endpoints)
        clientConfiguration.totalTimeout = settings.kisTimeout
        let metrics = metricsSettings.map { AgentMetrics(settings: $0) }
        if let metrics { clientConfiguration.observer = { metrics.observeKIS(path: $0, outcome: $1, seconds: $2) } }
        let client = try KISClient(configuration: clientConfiguration)
        var configuration = KeyManagerConfiguration()
        configuration.waitForTokenInterval = settings.waitForTokenInterval
        configuration.now = settings.now
        if let metrics { configuration.issuanceObserver = { metrics.observeIssuance(kind: $0, failure: $1) } }
        do {
            try await serve(manager: KeyManager(vault: vault, client: client, configuration: configuration), idleLock: idleLock,
                            maxLock: maxLock, renewal: renewal, metrics: metrics, history: history, logger: logger, onListening: onListening)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    /// Serves `manager` in this process until stopped (signal, `/v1/stop`), holding the
    /// vault's agent lock the whole time. The socket is created 0600 in a 0700 directory,
    /// never looser for a moment; a stale socket of a killed agent is replaced, anything
    /// else at the path is refused.
    public func serve(manager: KeyManager, idleLock: TimeInterval?, maxLock: TimeInterval?, renewal: RenewalSettings? = nil,
                      metrics: AgentMetrics? = nil, history: HeadMemory? = nil, logger: Logger, onListening: @escaping @Sendable () -> Void) async throws {
        umask(0o177)
        let lockFD = open(lockFile, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            throw AgentError.alreadyRunning("another agent holds \(lockFile)")
        }
        defer { close(lockFD) }
        var info = stat()
        if activation == nil, lstat(socketPath, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw AgentError.setup("\(socketPath) exists and is not a socket; refusing to replace it: choose another --socket path")
            }
            unlink(socketPath)
        }
        let server = AgentServer(manager: manager, vaultPath: vaultPath, socketPath: socketPath, idleLock: idleLock, maxLock: maxLock, logger: logger,
                                 renewal: renewal, metrics: metrics, activation: activation, history: history)
        try await server.run(onListening: onListening)
    }

    /// Starts `executable arguments` (an `agent start --foreground ... --passphrase-fd 0`)
    /// detached in a new session, hands it the passphrase through a pipe (never argv or the
    /// environment), and waits until it answers on the socket.
    /// - Returns: the agent's pid.
    /// - Throws: ``AgentError/setup(_:)`` when it does not come up.
    public func detach(closing vault: UnlockedVault, executable: String, arguments: [String], passphrase: SecureBytes,
                       environment: [String: String]) throws -> Int32 {
        // The detached agent opens the vault itself.
        vault.vault.close()
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw AgentError.setup("cannot create a pipe: \(String(cString: strerror(errno)))") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [Self.detachArgument] + arguments
        var environment = environment
        environment["KISVAULT_PASSPHRASE"] = nil
        process.environment = environment
        process.standardInput = FileHandle(fileDescriptor: pipeFDs[0], closeOnDealloc: true)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        passphrase.withUnsafeBytes { _ = write(pipeFDs[1], $0.baseAddress!, $0.count) }
        _ = write(pipeFDs[1], "\n", 1)
        close(pipeFDs[1])
        for _ in 0..<200 {
            if (try? AgentClient.request(socket: socketPath, method: "GET", target: "/v1/status", timeout: 1)) != nil {
                return process.processIdentifier
            }
            if !process.isRunning { break }
            usleep(50_000)
        }
        throw AgentError.setup("the agent did not start; run 'kisvault agent start --foreground --verbose' to see why")
    }
}
