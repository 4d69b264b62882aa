import CredentialService
import Foundation
import HTTPTypes
import Hummingbird
import KISAPI
import KeyManager
import Logging
import NIOCore
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The request context: Hummingbird's basics plus the channel, for the peer check.
struct AgentContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The uid of the process at the other end of the socket (`SO_PEERCRED`).
    func peerUID() async throws -> uid_t {
        guard let provider = channel as? any SocketOptionProvider else { throw ServiceError(.forbidden, "no peer credentials") }
        let credentials: PeerCredentials = try await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(PeerCredentials.option)).get()
        return credentials.uid
    }
}

/// Refuses every connection whose peer is not this user, whatever the socket's mode.
struct PeerCheck: RouterMiddleware {
    typealias Context = AgentContext
    let logger: Logger

    func handle(_ request: Request, context: AgentContext, next: (Request, AgentContext) async throws -> Response) async throws -> Response {
        let uid = (try? await context.peerUID()) ?? uid_t.max
        guard uid == getuid() else {
            logger.warning("refused a connection from another user", metadata: ["peer_uid": "\(uid)"])
            return AgentServer.failure(ServiceError(.forbidden, "this agent serves uid \(getuid()) only"))
        }
        return try await next(request, context)
    }
}

/// The agent: serves one unlocked vault on a Unix socket, HTTP/1.1 + JSON.
public final class AgentServer: Sendable {
    let state: AgentState
    let socketPath: String
    let connectionIdleTimeout: TimeInterval
    let stopper = Stopper()
    let renewer: Renewer?
    let metrics: AgentMetrics?
    /// The socket systemd handed the agent, if it did; else the agent binds `socketPath`.
    let activation: SocketActivation?

    /// - Parameters:
    ///   - manager: the manager over the unlocked vault; the agent owns it from here on.
    ///   - idleLock: lock after this long without a request.
    ///   - maxLock: lock this long after start, whatever happens.
    ///   - connectionIdleTimeout: close a connection idle this long (scripts open one per
    ///     request; one that connects and sends nothing must not hold a descriptor forever).
    ///   - now: the clock idle and maximum-lifetime locks are measured on.
    ///   - renewal: what to keep renewed in the background (`--renew-before`), if anything.
    ///   - activation: the listening socket systemd handed over; the agent serves it and leaves
    ///     it in place when it stops.
    ///   - history: what this client has seen of its vaults' histories: checked when the
    ///     agent is unlocked again, and the vault's head remembered at each renewal pass and lock.
    public init(manager: KeyManager, vaultPath: String, socketPath: String, idleLock: TimeInterval?, maxLock: TimeInterval?, logger: Logger,
                connectionIdleTimeout: TimeInterval = 30, now: @escaping @Sendable () -> Date = { Date() }, renewal: RenewalSettings? = nil,
                metrics: AgentMetrics? = nil, activation: SocketActivation? = nil, history: HeadMemory? = nil) {
        self.metrics = metrics
        self.activation = activation
        state = AgentState(manager: manager, vaultPath: vaultPath, idleLock: idleLock, maxLock: maxLock, logger: logger, now: now, history: history)
        renewer = renewal.map { [state] in Renewer(state: state, settings: $0) }
        self.socketPath = socketPath
        self.connectionIdleTimeout = connectionIdleTimeout
    }

    /// Serves until SIGTERM/SIGINT or `POST /v1/stop`, then wipes the keys and removes the
    /// socket. `onListening` runs once the socket accepts connections. A signal locks the
    /// agent at once, before the graceful shutdown waits for requests in flight.
    public func run(onListening: @escaping @Sendable () -> Void) async throws {
        let router = AgentRoutes(state: state, stopper: stopper, renewer: renewer).router(peerCheck: true, metrics: metrics)
        let metricsServer = try await startMetrics()
        let notify = SystemdNotify()
        let watchdog = Task {
            guard let ping = notify.watchdogPing else { return }
            while !Task.isCancelled {
                notify.watchdog()
                try? await Task.sleep(for: .milliseconds(Int64(ping * 1000)))
            }
        }
        let ticker = Task { [state] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                state.tick()
            }
        }
        let listener = AgentListener(responder: router.buildResponder(),
                                     configuration: .init(idleTimeout: .milliseconds(Int64(connectionIdleTimeout * 1000))), logger: state.logger)
        let address: AgentListenAddress = activation.map { .descriptor($0.descriptor) } ?? .path(socketPath)
        // A socket systemd made is systemd's to remove.
        let ownSocket = activation == nil
        CrashSignals.install(socket: ownSocket ? socketPath : nil)
        let server = Task {
            try await listener.run(on: address) {
                onListening()
                notify.ready()
            }
        }
        let renewing = Task { [renewer] in await renewer?.run() }
        stopper.set { [state] reason in
            notify.stopping()
            state.lockNow(reason: reason)
            server.cancel()
        }
        let signals = [SIGTERM, SIGINT, SIGHUP].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [stopper] in stopper.stop(reason: "signal \(number)") }
            source.resume()
            return source
        }
        defer {
            for source in signals { source.cancel() }
            ticker.cancel()
            watchdog.cancel()
            metricsServer?.cancel()
            renewing.cancel()
            state.lockNow(reason: "stopped")
            // Our own socket, unless something else took its place meanwhile.
            var info = stat()
            if ownSocket, lstat(socketPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK { unlink(socketPath) }
        }
        do {
            try await server.value
        } catch is CancellationError {
            // stopped on purpose
        }
    }

    /// Serves `GET /metrics` on the loopback address of `--metrics` until cancelled; nil
    /// without one. Bound before the agent says it is ready, so a bad address fails the
    /// start rather than a scrape.
    func startMetrics() async throws -> Task<Void, any Error>? {
        guard let metrics else { return nil }
        let router = Router()
        let state = self.state, renewer = self.renewer
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.render(state: state, renewer: renewer))))
        }
        var quiet = state.logger
        quiet.logLevel = .warning
        let (stream, bound) = AsyncStream<Bool>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname(metrics.settings.host, port: metrics.settings.port), serverName: "kisvault-metrics"),
                              onServerRunning: { _ in bound.yield(true); bound.finish() }, logger: quiet)
        let task = Task { defer { bound.finish() }; try await app.run() }
        var iterator = stream.makeAsyncIterator()
        guard await iterator.next() == true else {
            _ = try await task.value
            throw AgentError.setup("cannot serve metrics on \(metrics.settings.host):\(metrics.settings.port)")
        }
        return task
    }

    static let vaultHeader = HTTPField.Name(AgentHeader.forVault)!
    static let kisRealHeader = HTTPField.Name(AgentHeader.kisReal)!
    static let kisMockHeader = HTTPField.Name(AgentHeader.kisMock)!
    static let servedVaultHeader = HTTPField.Name(AgentHeader.vault)!

    /// The headers of every answer: the vault it serves (`x-kisvault-vault`) and the KIS
    /// URLs it talks to (`x-kisvault-kis-real`, `-mock`), so a CLI configured for other
    /// hosts (a `kis-mock`) never takes a credential from an agent that asks KIS's real ones.
    static func headers(vault: String?, endpoints: KISEndpoints?) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let vault { headers[servedVaultHeader] = vault }
        if let endpoints {
            headers[kisRealHeader] = endpoints.real
            headers[kisMockHeader] = endpoints.mock
        }
        return headers
    }

    /// A JSON answer of one of the API's Codable types.
    /// One that cannot be encoded is a 500 `vault_error`, never an empty 200.
    static func encoded<T: Encodable>(_ status: Int, _ value: T, vault: String? = nil, endpoints: KISEndpoints? = nil) -> Response {
        guard let data = try? AgentRoutes.encoder.encode(value) else {
            return Response(status: .internalServerError, headers: headers(vault: vault, endpoints: endpoints),
                            body: .init(byteBuffer: ByteBuffer(string: unencodable)))
        }
        return Response(status: .init(code: status), headers: headers(vault: vault, endpoints: endpoints), body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The answer when an answer cannot be encoded, written by hand so it always can be.
    static let unencodable = #"{"error":"vault_error","message":"the agent could not encode its answer"}"#

    /// An error answer: `{"error": CODE, "message": ...}` with the code's HTTP status.
    static func failure(_ failure: ServiceError, vault: String? = nil, endpoints: KISEndpoints? = nil) -> Response {
        encoded(failure.code.httpStatus, ErrorAnswer(error: failure.code, message: failure.message), vault: vault, endpoints: endpoints)
    }
}

/// Unknown routes and methods answer in the API's error shape, not an empty 404.
struct JSONErrors: RouterMiddleware {
    typealias Context = AgentContext
    let vault: String
    let endpoints: KISEndpoints
    /// The ``VaultIdentity`` of the vault the agent holds.
    let identity: @Sendable () -> String?

    func handle(_ request: Request, context: AgentContext, next: (Request, AgentContext) async throws -> Response) async throws -> Response {
        // A caller that names its KIS URLs gets nothing from an agent aimed at other hosts:
        // refused before any work, so the agent never issues at a host the caller did
        // not ask for (a CLI pointed at kis-mock, an agent at KIS's real host).
        // Nor does a caller that names another vault: the agent would issue, revoke or hand
        // out (and audit) its own vault's account of that name.
        if let named = request.headers[AgentServer.vaultHeader], named != identity() {
            return AgentServer.failure(ServiceError(.vaultDiffers, "this agent holds the vault \(vault), not the one the request names"),
                                       vault: vault, endpoints: endpoints)
        }
        let real = request.headers[AgentServer.kisRealHeader], mock = request.headers[AgentServer.kisMockHeader]
        if real != nil || mock != nil, real != endpoints.real || mock != endpoints.mock {
            return AgentServer.failure(ServiceError(.kisURLsDiffer, "this agent talks to \(endpoints.real) and \(endpoints.mock), not to the KIS URLs of the request"),
                                       vault: vault, endpoints: endpoints)
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code: ErrorCode = error.status == .notFound ? .notFound : .badRequest
            let path = String(request.uri.path.prefix(200))
            let message = error.status == .notFound ? "no such request: \(request.method) \(path) (see docs/CLI.md, \"The agent\")"
                : "\(request.method) \(path): \(error.status.reasonPhrase)"
            return AgentServer.encoded(error.status == .notFound ? 404 : error.status.code,
                                       ErrorAnswer(error: code, message: message), vault: vault, endpoints: endpoints)
        }
    }
}

/// How the server is told to stop, set once it runs.
final class Stopper: @unchecked Sendable {
    private let lock = NSLock()
    private var action: (@Sendable (String) -> Void)?

    func set(_ action: @escaping @Sendable (String) -> Void) {
        lock.lock(); self.action = action; lock.unlock()
    }

    /// Runs the action, once: a second stop (another signal, the fallback of `/v1/stop`)
    /// finds it already under way.
    func stop(reason: String) {
        lock.lock(); let action = self.action; self.action = nil; lock.unlock()
        action?(reason)
    }
}
