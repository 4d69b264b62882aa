import CredentialService
import Foundation
import HTTPTypes
import KISAPI
import Hummingbird
import KeyManager
import NIOCore
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The agent's API (docs/CLI.md, "The agent"): each route a thin call into a
/// ``LocalCredentialService`` over the unlocked vault, its answer one of the service's
/// Codable types, its error the ``ErrorCode`` table's.
struct AgentRoutes: Sendable {
    let state: AgentState
    let stopper: Stopper
    /// The background renewal, when `--renew-before` asked for one.
    var renewer: Renewer?

    /// The largest request body: a dead token, a passphrase, a bulk selection of 10,000
    /// names.
    static let maxBody = 1024 * 1024

    /// The routes, as the metrics label them.
    static let knownRoutes: Set<String> = [
        "/v1/status", "/v1/accounts", "/v1/accounts/:name/approval-key", "/v1/accounts/:name/access-token",
        "/v1/accounts/:name/access-token/invalidate", "/v1/accounts/:name/access-token/revoke",
        "/v1/accounts/:name/app-credentials", "/v1/bulk", "/v1/lock", "/v1/unlock", "/v1/stop",
    ]

    /// The router. `peerCheck` is false only for in-process tests, whose channel has no
    /// peer to ask. With `metrics`, every answer is counted by route and status.
    func router(peerCheck: Bool, metrics: AgentMetrics? = nil) -> Router<AgentContext> {
        let router = Router(context: AgentContext.self)
        if let metrics { router.middlewares.add(CountRequests(metrics: metrics)) }
        if peerCheck { router.middlewares.add(PeerCheck(logger: state.logger)) }
        router.middlewares.add(JSONErrors(vault: state.vaultPath, endpoints: state.endpoints, identity: { [state] in state.servedVault }))
        let state = self.state, renewer = self.renewer
        router.get("/v1/status") { _, _ in
            state.checkVault()
            return answer(AgentStatusAnswer(
                locked: state.isLocked, lockReason: state.lockReason, vault: state.vaultPath, pid: Int(getpid()),
                startedAt: Timestamp.string(state.started), idleLockSeconds: state.idleLock, maxLockSeconds: state.maxLock,
                kisURLs: KISURLs(state.endpoints), renewal: renewer?.status))
        }
        router.get("/v1/accounts") { request, _ in
            await serve { service in AccountList(accounts: try await service.accounts(tag: request.uri.queryParameters.get("tag").map { String($0) })) }
        }
        router.get("/v1/accounts/:name/approval-key") { request, context in
            await credential(.approval, request, context)
        }
        router.get("/v1/accounts/:name/access-token") { request, context in
            await credential(.token, request, context)
        }
        // A program reports a token KIS refused: body {"access_token": "<the dead token>"};
        // the answer is the GET's, with the token to use now.
        router.post("/v1/accounts/:name/access-token/invalidate") { request, context in
            let name = context.parameters.get("name") ?? ""
            return await serve { service in
                let minTTL = try Self.minTTL(request)
                struct Dead: Decodable {
                    var token: SecureBytes
                    enum CodingKeys: String, CodingKey { case token = "access_token" }
                }
                let dead = try await Self.decode(Dead.self, from: request, what: "the dead token as {\"access_token\": \"...\"}")
                guard dead.token.count > 0 else { throw ServiceError(.badRequest, "give the dead token as {\"access_token\": \"...\"}") }
                return try await service.invalidateToken(account: name, deadToken: dead.token, minTTL: minTTL)
            }
        }
        // Revokes the stored token at KIS and forgets it.
        router.post("/v1/accounts/:name/access-token/revoke") { _, context in
            let name = context.parameters.get("name") ?? ""
            return await serve { service in try await service.revokeToken(account: name) }
        }
        // Every hand-out of an appkey and appsecret is audited (`exec`, `token.export`,
        // `token.check`, or `account.reveal`).
        router.get("/v1/accounts/:name/app-credentials") { request, context in
            let name = context.parameters.get("name") ?? ""
            let purpose: HandOut = switch request.uri.queryParameters.get("for") {
            case "exec": .exec
            case "reveal": .reveal
            case "export": .export
            case "check": .check
            default: .api
            }
            return await serve { service in try await service.appCredentials(account: name, purpose: purpose) }
        }
        router.post("/v1/bulk") { request, _ in
            await bulk(request)
        }
        // The passphrase is the body, as bytes (at most 16 KiB), over the peer-checked
        // 0600 socket: the same path a detached agent's passphrase takes through a pipe.
        router.post("/v1/unlock") { request, _ in
            do {
                var body = try await request.body.collect(upTo: 16 * 1024)
                let passphrase = body.withUnsafeReadableBytes { SecureBytes(copying: $0) }
                body.withUnsafeMutableReadableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                guard passphrase.count > 0 else { throw ServiceError(.badRequest, "the request carries no passphrase") }
                try state.unlock(passphrase: passphrase, keyslot: request.uri.queryParameters.get("keyslot"))
                return answer(LockAnswer(locked: false))
            } catch {
                return failure(error)
            }
        }
        router.post("/v1/lock") { _, _ in
            state.lockNow(reason: "locked on request")
            return answer(LockAnswer(locked: true))
        }
        let stopper = self.stopper
        router.post("/v1/stop") { _, context in
            state.lockNow(reason: "stopping")
            // Answer first, then shut down (graceful: the socket is removed) once the answer
            // has reached the caller: when its connection closes (the CLI asks for that), or
            // after two seconds for a client that keeps the connection open.
            context.channel.closeFuture.whenComplete { _ in stopper.stop(reason: "stopped on request") }
            Task {
                try? await Task.sleep(for: .seconds(2))
                stopper.stop(reason: "stopped on request")
            }
            return answer(StopAnswer(stopping: true))
        }
        return router
    }

    /// Runs `body` with a service over the unlocked vault, the keys accessible meanwhile,
    /// and answers what it returns, or the error's code.
    func serve<T: Encodable>(_ body: (LocalCredentialService) async throws -> T) async -> Response {
        do {
            let manager = try state.begin()
            defer { state.end(manager) }
            return answer(try await body(LocalCredentialService(manager: manager, handOutNote: "via agent")))
        } catch {
            return failure(error)
        }
    }

    func credential(_ kind: CredentialKind, _ request: Request, _ context: AgentContext) async -> Response {
        let name = context.parameters.get("name") ?? ""
        do {
            let minTTL = try Self.minTTL(request)
            let manager = try state.begin()
            defer { state.end(manager) }
            let answer = try await LocalCredentialService(manager: manager, handOutNote: "via agent").credential(kind, account: name, minTTL: minTTL)
            // Issued now: this client wrote to the vault, and a restore to before it is
            // refused too (a stored answer wrote nothing).
            if !answer.fromCache { state.rememberHead() }
            // The hot path: the same fields as the Codable form, written by JSONSerialization.
            guard let data = try? JSONSerialization.data(withJSONObject: answer.jsonObject, options: [.sortedKeys]) else {
                return Response(status: .internalServerError, headers: AgentServer.headers(vault: state.vaultPath, endpoints: state.endpoints),
                                body: .init(byteBuffer: ByteBuffer(string: AgentServer.unencodable)))
            }
            return Response(status: .ok, headers: AgentServer.headers(vault: state.vaultPath, endpoints: state.endpoints),
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        } catch {
            return failure(error)
        }
    }

    static func minTTL(_ request: Request) throws(ServiceError) -> TimeInterval {
        let text = request.uri.queryParameters.get("min_ttl").map { String($0) } ?? String(Int(CredentialRules.defaultMinTTL))
        guard let minTTL = Double(text), (0..<CredentialRules.shortestLifetime).contains(minTTL) else {
            throw ServiceError(.badRequest, "min_ttl must be seconds from 0 to \(Int(CredentialRules.shortestLifetime) - 1), not '\(text.prefix(40))'")
        }
        return minTTL
    }

    /// The request's JSON body (at most ``maxBody`` bytes), wiped once decoded.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, what: String) async throws -> T {
        var body = try await request.body.collect(upTo: maxBody)
        defer { body.withUnsafeMutableReadableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        do {
            return try body.withUnsafeReadableBytes { try JSONDecoder().decode(T.self, from: Data($0)) }
        } catch {
            throw ServiceError(.badRequest, "give \(what)")
        }
    }

    /// A bulk run, streamed as NDJSON: a progress line every quarter second, then one line
    /// with the results (or the error). A caller that goes away cancels the run; what was
    /// issued by then is stored.
    func bulk(_ request: Request) async -> Response {
        let bulkRequest: BulkRequest
        do {
            bulkRequest = try await Self.decode(BulkRequest.self, from: request, what: "a bulk request (docs/CLI.md, \"The agent\")")
            if let problem = bulkRequest.problem { throw ServiceError(.badRequest, problem) }
            // Locked or changed: said now, with its status, rather than inside the stream.
            state.end(try state.begin())
        } catch {
            return failure(error)
        }
        let state = self.state
        var headers = AgentServer.headers(vault: state.vaultPath, endpoints: state.endpoints)
        headers[.contentType] = "application/x-ndjson"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            func line(_ value: BulkStreamLine) -> ByteBuffer {
                var data = (try? AgentRoutes.encoder.encode(value)) ?? Data(AgentServer.unencodable.utf8)
                data.append(0x0A)
                return ByteBuffer(bytes: data)
            }
            let manager: KeyManager
            do { manager = try state.begin() } catch {
                let failed = ServiceError(error)
                try await writer.write(line(BulkStreamLine(error: failed.code, message: failed.message)))
                try await writer.finish(nil)
                return
            }
            defer { state.end(manager) }
            let service = LocalCredentialService(manager: manager, handOutNote: "via agent")
            let live = LiveProgress()
            let run = Task {
                defer {
                    if let progress = live.progress { state.untrack(progress) }
                    live.markFinished()
                }
                return try await service.bulk(bulkRequest) { progress in
                    // A lock from now on stops the run cleanly.
                    state.track(progress)
                    live.set(progress)
                }
            }
            // A progress line when an account finishes, at most one per
            // `progressLineMilliseconds` (a run of 10,000 accounts is not 10,000 lines).
            var gone = false
            for await _ in live.changes {
                if live.isFinished { break }
                guard !gone, let progress = live.progress else { continue }
                let (done, failed, skipped) = progress.counts
                do {
                    try await writer.write(line(BulkStreamLine(progress: .init(total: progress.total, done: done, failed: failed, skipped: skipped))))
                } catch {
                    gone = true
                    run.cancel()
                    continue
                }
                // Changes meanwhile wait, coalesced, for the next line.
                try? await Task.sleep(for: .milliseconds(Self.progressLineMilliseconds))
            }
            let outcome = await run.result
            state.rememberHead()
            switch outcome {
            case .success(let results): try await writer.write(line(BulkStreamLine(results: results)))
            case .failure(let error):
                let failed = ServiceError(error)
                try await writer.write(line(BulkStreamLine(error: failed.code, message: failed.message)))
            }
            try await writer.finish(nil)
        })
    }

    /// The shortest time between two progress lines of a bulk stream.
    static let progressLineMilliseconds = 100

    static var encoder: JSONEncoder { AgentJSON.encoder }

    func answer<T: Encodable>(_ value: T) -> Response {
        AgentServer.encoded(200, value, vault: state.vaultPath, endpoints: state.endpoints)
    }

    func failure(_ error: any Error) -> Response {
        AgentServer.failure(ServiceError(error), vault: state.vaultPath, endpoints: state.endpoints)
    }
}

/// A bulk run's counters once it has started, and whether it has finished.
final class LiveProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var value: BulkProgress?
    private var finished = false
    /// A signal per change, coalesced: a writer slower than the run sees the latest only.
    let changes: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (changes, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func set(_ progress: BulkProgress) {
        lock.withLock { value = progress }
        let signal = self.signal
        progress.observe { signal.yield() }
        signal.yield()
    }

    var progress: BulkProgress? { lock.withLock { value } }

    var isFinished: Bool { lock.withLock { finished } }

    func markFinished() {
        lock.withLock { finished = true }
        signal.yield()
        signal.finish()
    }
}

/// Counts each answer for the metrics, by route and status.
struct CountRequests: RouterMiddleware {
    typealias Context = AgentContext
    let metrics: AgentMetrics

    func handle(_ request: Request, context: AgentContext, next: (Request, AgentContext) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.observeRequest(path: request.uri.path, status: Int(response.status.code))
            return response
        } catch let error as HTTPError {
            metrics.observeRequest(path: request.uri.path, status: Int(error.status.code))
            throw error
        }
    }
}
