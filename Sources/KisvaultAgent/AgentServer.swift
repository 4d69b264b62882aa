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
        guard let provider = channel as? any SocketOptionProvider else { throw AgentFailure(.forbidden, "no peer credentials") }
        let credentials: PeerCredentials = try await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(PeerCredentials.option)).get()
        return credentials.uid
    }
}

/// Linux's `struct ucred` (pid, uid, gid), which Glibc hides behind `_GNU_SOURCE`; the
/// layout is three 32-bit fields on every Linux architecture.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    /// `SO_PEERCRED`, 17 on Linux (asm-generic/socket.h).
    static let option: Int32 = 17
}

/// Refuses every connection whose peer is not this user, whatever the socket's mode.
struct PeerCheck: RouterMiddleware {
    typealias Context = AgentContext
    let logger: Logger

    func handle(_ request: Request, context: AgentContext, next: (Request, AgentContext) async throws -> Response) async throws -> Response {
        let uid = (try? await context.peerUID()) ?? uid_t.max
        guard uid == getuid() else {
            logger.warning("refused a connection from another user", metadata: ["peer_uid": "\(uid)"])
            return AgentServer.failure(AgentFailure(.forbidden, "this agent serves uid \(getuid()) only"))
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

    /// - Parameters:
    ///   - manager: the manager over the unlocked vault; the agent owns it from here on.
    ///   - idleLock: lock after this long without a request.
    ///   - maxLock: lock this long after start, whatever happens.
    ///   - connectionIdleTimeout: close a connection idle this long (scripts open one per
    ///     request; one that connects and sends nothing must not hold a descriptor forever).
    ///   - now: the clock idle and maximum-lifetime locks are measured on.
    public init(manager: KeyManager, vaultPath: String, socketPath: String, idleLock: TimeInterval?, maxLock: TimeInterval?, logger: Logger,
                connectionIdleTimeout: TimeInterval = 30, now: @escaping @Sendable () -> Date = { Date() }) {
        state = AgentState(manager: manager, vaultPath: vaultPath, idleLock: idleLock, maxLock: maxLock, logger: logger, now: now)
        self.socketPath = socketPath
        self.connectionIdleTimeout = connectionIdleTimeout
    }

    /// Serves until SIGTERM/SIGINT or `POST /v1/stop`, then wipes the keys and removes the
    /// socket. `onListening` runs once the socket accepts connections. A signal locks the
    /// agent at once, before the graceful shutdown waits for requests in flight.
    public func run(onListening: @escaping @Sendable () -> Void) async throws {
        let router = Router(context: AgentContext.self)
        router.middlewares.add(PeerCheck(logger: state.logger))
        router.middlewares.add(JSONErrors(vault: state.vaultPath, endpoints: state.endpoints))
        routes(router)
        let ticker = Task { [state] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                state.tick()
            }
        }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(connectionIdleTimeout * 1000)))),
            configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "kisvault-agent"),
            onServerRunning: { _ in onListening() },
            logger: state.logger)
        let server = Task { try await app.run() }
        stopper.set { [state] reason in
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
            state.lockNow(reason: "stopped")
            // Our own socket, unless something else took its place meanwhile.
            var info = stat()
            if lstat(socketPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK { unlink(socketPath) }
        }
        do {
            try await server.value
        } catch is CancellationError {
            // stopped on purpose
        }
    }

    func routes(_ router: Router<AgentContext>) {
        let state = self.state
        router.get("/v1/status") { _, _ in
            state.checkVault()
            return Self.json(200, [
                "locked": state.isLocked, "lock_reason": state.lockReason ?? NSNull(), "vault": state.vaultPath,
                "pid": Int(getpid()), "started_at": Timestamp.string(state.started),
                "idle_lock_seconds": state.idleLock ?? NSNull(), "max_lock_seconds": state.maxLock ?? NSNull(),
                "kis_urls": ["real": state.endpoints.real, "mock": state.endpoints.mock],
            ], vault: state.vaultPath, endpoints: state.endpoints)
        }
        router.get("/v1/accounts") { _, _ in
            do {
                let manager = try state.begin()
                defer { state.end(manager) }
                let accounts = try manager.vault.vault.accounts().map { a -> [String: Any] in
                    ["name": a.name, "environment": a.environment.rawValue, "tags": a.tags, "created_at": a.createdAt, "updated_at": a.updatedAt]
                }
                return Self.json(200, ["accounts": accounts], vault: state.vaultPath, endpoints: state.endpoints)
            } catch {
                return Self.failure(Self.classify(error), vault: state.vaultPath, endpoints: state.endpoints)
            }
        }
        router.get("/v1/accounts/:name/approval-key") { request, context in
            await Self.credential(state, .approval, request, context)
        }
        router.get("/v1/accounts/:name/access-token") { request, context in
            await Self.credential(state, .token, request, context)
        }
        // A program reports a token KIS refused: body {"access_token": "<the dead token>"}
        // (at most 16 KiB); the answer is the GET's, with the token to use now.
        router.post("/v1/accounts/:name/access-token/invalidate") { request, context in
            let name = context.parameters.get("name") ?? ""
            do {
                var body = try await request.body.collect(upTo: 16 * 1024)
                defer { body.withUnsafeMutableReadableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
                let object = body.withUnsafeReadableBytes { (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any] }
                guard let dead = object?["access_token"] as? String, !dead.isEmpty else {
                    throw AgentFailure(.badRequest, "give the dead token as {\"access_token\": \"...\"}")
                }
                let minTTL = Double(request.uri.queryParameters.get("min_ttl") ?? "600") ?? 600
                let manager = try state.begin()
                defer { state.end(manager) }
                let (_, issued) = try await manager.invalidate(account: name, token: SecureBytes(utf8: dead), minTTL: minTTL)
                return Self.answer(issued, kind: .token, state: state)
            } catch {
                return Self.failure(Self.classify(error), vault: state.vaultPath, endpoints: state.endpoints)
            }
        }
        // Revokes the stored token at KIS and forgets it: {"revoked": true} or, for a token
        // KIS no longer knew, {"revoked": false, "already_invalid": true}.
        router.post("/v1/accounts/:name/access-token/revoke") { _, context in
            let name = context.parameters.get("name") ?? ""
            do {
                let manager = try state.begin()
                defer { state.end(manager) }
                let outcome = try await manager.revoke(account: name)
                return Self.json(200, ["revoked": outcome == .revoked, "already_invalid": outcome == .alreadyInvalid],
                                 vault: state.vaultPath, endpoints: state.endpoints)
            } catch {
                return Self.failure(Self.classify(error), vault: state.vaultPath, endpoints: state.endpoints)
            }
        }
        router.get("/v1/accounts/:name/app-credentials") { request, context in
            let name = context.parameters.get("name") ?? ""
            do {
                let manager = try state.begin()
                defer { state.end(manager) }
                let secrets = try manager.vault.secrets(of: name)
                let summary = try manager.vault.vault.account(named: name)
                // Every hand-out of an appkey and appsecret is audited, as `exec` and
                // `account show --reveal` are when they unlock by themselves; no row, no
                // hand-out. One row per request: these are asked once per program start.
                switch request.uri.queryParameters.get("for") {
                case "exec": try manager.vault.recordAudit(action: "exec", account: name, detail: "via agent")
                case "reveal": try manager.vault.recordAudit(action: "account.reveal", account: name, detail: "via agent")
                default: try manager.vault.recordAudit(action: "account.reveal", account: name, detail: "app-credentials via agent")
                }
                var body: [String: Any] = [
                    "environment": summary.environment.rawValue,
                    "appkey": secrets.appkey.utf8String(), "appsecret": secrets.appsecret.utf8String(),
                ]
                body["account_no"] = secrets.accountNumber?.utf8String()
                body["hts_id"] = secrets.htsID?.utf8String()
                return Self.json(200, body, vault: state.vaultPath, endpoints: state.endpoints)
            } catch {
                return Self.failure(Self.classify(error), vault: state.vaultPath, endpoints: state.endpoints)
            }
        }
        // The passphrase is the body, as bytes (at most 16 KiB), over the peer-checked
        // 0600 socket: the same path a detached agent's passphrase takes through a pipe.
        router.post("/v1/unlock") { request, _ in
            do {
                var body = try await request.body.collect(upTo: 16 * 1024)
                let passphrase = body.withUnsafeReadableBytes { SecureBytes(copying: $0) }
                body.withUnsafeMutableReadableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                guard passphrase.count > 0 else { throw AgentFailure(.badRequest, "the request carries no passphrase") }
                try state.unlock(passphrase: passphrase, keyslot: request.uri.queryParameters.get("keyslot"))
                return Self.json(200, ["locked": false], vault: state.vaultPath, endpoints: state.endpoints)
            } catch {
                return Self.failure(Self.classify(error), vault: state.vaultPath, endpoints: state.endpoints)
            }
        }
        router.post("/v1/lock") { _, _ in
            state.lockNow(reason: "locked on request")
            return Self.json(200, ["locked": true], vault: state.vaultPath, endpoints: state.endpoints)
        }
        let stopper = self.stopper
        router.post("/v1/stop") { _, _ in
            state.lockNow(reason: "stopping")
            // Answer first, then shut down (graceful: the socket is removed).
            Task {
                try? await Task.sleep(for: .milliseconds(50))
                stopper.stop(reason: "stopped on request")
            }
            return Self.json(200, ["stopping": true], vault: state.vaultPath, endpoints: state.endpoints)
        }
    }

    static func credential(_ state: AgentState, _ kind: CredentialKind, _ request: Request, _ context: AgentContext) async -> Response {
        let name = context.parameters.get("name") ?? ""
        let minTTLText = request.uri.queryParameters.get("min_ttl") ?? "600"
        guard let minTTL = Double(minTTLText), (0..<KISFacts.shortestLifetime).contains(minTTL) else {
            return failure(AgentFailure(.badRequest, "min_ttl must be seconds from 0 to 86399, not '\(minTTLText)'"), vault: state.vaultPath, endpoints: state.endpoints)
        }
        do {
            let manager = try state.begin()
            defer { state.end(manager) }
            let issued = try await manager.get(account: name, kind: kind, minTTL: minTTL)
            return answer(issued, kind: kind, state: state)
        } catch {
            return failure(classify(error), vault: state.vaultPath, endpoints: state.endpoints)
        }
    }

    /// A credential answer, as every route that hands one out gives it.
    static func answer(_ issued: IssuedCredential, kind: CredentialKind, state: AgentState) -> Response {
        json(200, [
            kind == .approval ? "approval_key" : "access_token": issued.value.utf8String(),
            "issued_at": Timestamp.string(issued.times.issuedAt),
            "expires_at": Timestamp.string(issued.times.expiresAt),
            "from_cache": issued.fromCache,
        ], vault: state.vaultPath, endpoints: state.endpoints)
    }

    /// Maps any error to the API's stable codes (``ErrorCode``, the table the CLI's exit
    /// codes come from too).
    static func classify(_ error: any Error) -> AgentFailure {
        if let error = error as? AgentFailure { return error }
        guard let code = ErrorCode.of(error) else { return AgentFailure(.vaultError, "\(error)") }
        return AgentFailure(code, "\(error)")
    }

    static let kisRealHeader = HTTPField.Name("x-kisvault-kis-real")!
    static let kisMockHeader = HTTPField.Name("x-kisvault-kis-mock")!

    /// A JSON answer. Every answer names the vault (`x-kisvault-vault`) and the KIS URLs
    /// the agent talks to (`x-kisvault-kis-real`, `-mock`), so a CLI configured for other
    /// hosts (a `kis-mock`) never takes a credential from an agent that asks KIS's real ones.
    static func json(_ status: Int, _ object: [String: Any], vault: String? = nil, endpoints: KISEndpoints? = nil) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let vault, let name = HTTPField.Name("x-kisvault-vault") { headers[name] = vault }
        if let endpoints {
            headers[kisRealHeader] = endpoints.real
            headers[kisMockHeader] = endpoints.mock
        }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func failure(_ failure: AgentFailure, vault: String? = nil, endpoints: KISEndpoints? = nil) -> Response {
        json(failure.code.httpStatus, ["error": failure.code.rawValue, "message": failure.message], vault: vault, endpoints: endpoints)
    }
}

/// Unknown routes and methods answer in the API's error shape, not an empty 404.
struct JSONErrors: RouterMiddleware {
    typealias Context = AgentContext
    let vault: String
    let endpoints: KISEndpoints

    func handle(_ request: Request, context: AgentContext, next: (Request, AgentContext) async throws -> Response) async throws -> Response {
        // A caller that names its KIS URLs gets nothing from an agent aimed at other hosts:
        // refused before any work, so the agent never issues at a host the caller did
        // not ask for (a CLI pointed at kis-mock, an agent at KIS's real host).
        let real = request.headers[AgentServer.kisRealHeader], mock = request.headers[AgentServer.kisMockHeader]
        if real != nil || mock != nil, real != endpoints.real || mock != endpoints.mock {
            return AgentServer.failure(AgentFailure(.kisURLsDiffer, "this agent talks to \(endpoints.real) and \(endpoints.mock), not to the KIS URLs of the request"),
                                       vault: vault, endpoints: endpoints)
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code: AgentFailure.Code = error.status == .notFound ? .notFound : .badRequest
            let path = String(request.uri.path.prefix(200))
            let message = error.status == .notFound ? "no such request: \(request.method) \(path) (see docs/CLI.md, \"The agent\")"
                : "\(request.method) \(path): \(error.status.reasonPhrase)"
            return AgentServer.json(error.status == .notFound ? 404 : error.status.code,
                                    ["error": code.rawValue, "message": message], vault: vault, endpoints: endpoints)
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

    func stop(reason: String) {
        lock.lock(); let action = self.action; lock.unlock()
        action?(reason)
    }
}
