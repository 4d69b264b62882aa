import Foundation
import KeyManager
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// What a running agent answers with its key (``KeyedCredentials``): a typed client of its
/// socket API, decoding the same Codable types the agent encodes. What needs no key (the
/// accounts, their state, the clock) is read from the vault, never through an agent.
///
/// An agent that cannot serve the caller throws ``AgentUnavailable`` (nothing listens, it
/// serves another vault file, talks to other KIS URLs, is locked, or its vault changed);
/// the caller then does the work itself. Any other refusal is a ``ServiceError`` with the
/// agent's code and message, final.
public final class AgentCredentialService: KeyedCredentials {
    public let socket: String
    public let kisURLs: KISURLs
    let vaultPath: String
    let debug: @Sendable (String) -> Void

    /// The agent at `KISVAULT_AGENT_SOCK`, else at the default socket when it exists; nil
    /// when there is none to ask.
    public init?(vaultPath: String, kisURLs: KISURLs, debug: @escaping @Sendable (String) -> Void = { _ in }) {
        let (socket, explicit) = AgentPaths.socket()
        guard explicit || FileManager.default.fileExists(atPath: socket) else { return nil }
        self.socket = socket
        self.vaultPath = vaultPath
        self.kisURLs = kisURLs
        self.debug = debug
    }

    public func credential(_ kind: CredentialKind, account: String, minTTL: TimeInterval) async throws -> CredentialAnswer {
        let path = kind == .approval ? "approval-key" : "access-token"
        let target = "/v1/accounts/\(Self.escape(account))/\(path)?min_ttl=\(Int(minTTL))"
        let response = try exchange("GET", target, body: [])
        guard response.status == 200 else { throw try refusal(response) }
        guard let object = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any],
              let answer = CredentialAnswer(jsonObject: object), answer.kind == kind else {
            throw ServiceError(.vaultError, "the agent's answer to GET \(target.prefix(100)) is not what kisvault expects: is it an older kisvault? (restart it)")
        }
        return answer
    }

    public func invalidateToken(account: String, deadToken: SecureBytes, minTTL: TimeInterval) async throws -> CredentialAnswer {
        var body = Array(#"{"access_token":""#.utf8) + deadToken.withUnsafeBytes { Array($0) } + Array(#""}"#.utf8)
        defer { body.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        return try call(CredentialAnswer.self, "POST", "/v1/accounts/\(Self.escape(account))/access-token/invalidate?min_ttl=\(Int(minTTL))", body: body)
    }

    public func revokeToken(account: String) async throws -> RevokeAnswer {
        try call(RevokeAnswer.self, "POST", "/v1/accounts/\(Self.escape(account))/access-token/revoke")
    }

    public func appCredentials(account: String, purpose: HandOut) async throws -> AppCredentials {
        try call(AppCredentials.self, "GET", "/v1/accounts/\(Self.escape(account))/app-credentials?for=\(purpose.rawValue)")
    }

    public func bulk(_ request: BulkRequest, started: @escaping @Sendable (BulkProgress) -> Void) async throws -> [BulkItemResult] {
        let body = try AgentJSON.encoder.encode(request)
        var progress: BulkProgress?
        var consumed = 0
        // The answer is NDJSON: progress lines while the run goes, then the results. The
        // run can take long: no read timeout shorter than the longest bulk run.
        func take(_ body: Data, final: Bool) throws -> [BulkItemResult]? {
            var lines = body.dropFirst(consumed).split(separator: 0x0A, omittingEmptySubsequences: false)
            if !final, body.last != 0x0A { lines = lines.dropLast() }  // a line still arriving
            for line in lines where !line.isEmpty {
                consumed += line.count + 1
                let decoded = try JSONDecoder().decode(BulkStreamLine.self, from: Data(line))
                if let counts = decoded.progress {
                    if progress == nil {
                        let made = BulkProgress(total: counts.total, remote: true)
                        progress = made
                        started(made)
                    }
                    progress?.update(done: counts.done, failed: counts.failed, skipped: counts.skipped)
                }
                if let results = decoded.results { return results }
                if let code = decoded.error { throw ServiceError(code, decoded.message ?? "the agent's bulk run failed") }
            }
            return nil
        }
        var found: [BulkItemResult]?
        var failure: (any Error)?
        let response = try exchange("POST", "/v1/bulk", body: Array(body), timeout: 86_400) { partial in
            guard partial.status == 200, found == nil, failure == nil else { return }
            do { found = try take(partial.body, final: false) } catch { failure = error }
        }
        if let failure { throw failure }
        if let found { return found }
        guard response.status == 200 else { throw try refusal(response) }
        guard let results = try take(response.body, final: true) else {
            throw ServiceError(.vaultError, "the agent's bulk answer ended without results")
        }
        if progress == nil { started(BulkProgress(total: results.count, remote: true)) }
        return results
    }

    public func close() async {}

    // MARK: The exchange

    /// One request; the answer decoded as `T`, or the agent's refusal thrown.
    func call<T: Decodable>(_ type: T.Type, _ method: String, _ target: String, body: [UInt8] = []) throws -> T {
        let response = try exchange(method, target, body: body)
        guard response.status == 200 else { throw try refusal(response) }
        do {
            return try JSONDecoder().decode(T.self, from: response.body)
        } catch {
            throw ServiceError(.vaultError, "the agent's answer to \(method) \(target.prefix(100)) is not what kisvault expects: is it an older kisvault? (restart it)")
        }
    }

    /// Sends the request with this command's KIS URLs, and checks the answer is from an
    /// agent serving this vault and these URLs.
    func exchange(_ method: String, _ target: String, body: [UInt8], timeout: TimeInterval = 30,
                  partial: ((AgentClient.Response) -> Void)? = nil) throws -> AgentClient.Response {
        let response: AgentClient.Response
        do {
            // The command's own vault and KIS URLs go with the request: an agent holding
            // another vault (vault_differs) or aimed at other hosts (kis_urls_differ)
            // refuses before doing anything.
            guard let vault = VaultIdentity.of(vaultPath) else { throw AgentUnavailable(reason: "no vault at \(vaultPath) to ask the agent about") }
            let headers = [AgentHeader.forVault: vault, AgentHeader.kisReal: kisURLs.real, AgentHeader.kisMock: kisURLs.mock]
            response = try AgentClient.request(socket: socket, method: method, target: target, headers: headers, body: body,
                                               timeout: timeout, partial: partial)
        } catch let unavailable as AgentUnavailable {
            throw unavailable
        } catch let error as AgentError where error.isUntrusted {
            // Someone else's socket where ours should be: said every time, not only with
            // --verbose, and the command goes on without it.
            throw AgentUnavailable(reason: error.description, alarming: true)
        } catch {
            throw AgentUnavailable(reason: "agent at \(socket) unusable (\(error))")
        }
        guard let served = response.headers[AgentHeader.vault], Self.sameFile(served, vaultPath) else {
            throw AgentUnavailable(reason: "the agent at \(socket) serves another vault")
        }
        // An agent started for other KIS hosts (KIS's real ones, while this command is
        // pointed at a kis-mock, or the reverse) must not answer for this command.
        if response.headers[AgentHeader.kisReal] != kisURLs.real || response.headers[AgentHeader.kisMock] != kisURLs.mock {
            throw AgentUnavailable(reason: "the agent at \(socket) talks to other KIS URLs (\(response.headers[AgentHeader.kisReal] ?? "?"), \(response.headers[AgentHeader.kisMock] ?? "?")) than this command (\(kisURLs.real), \(kisURLs.mock))")
        }
        return response
    }

    /// The error of a refusal: unavailable when the caller can do the work itself.
    func refusal(_ response: AgentClient.Response) throws -> any Error {
        let answer = try? JSONDecoder().decode(ErrorAnswer.self, from: response.body)
        let code = answer?.error ?? .vaultError
        switch code {
        case .locked, .vaultChanged, .kisURLsDiffer, .vaultDiffers:
            return AgentUnavailable(reason: "the agent answered \(code.rawValue)")
        default:
            return ServiceError(code, answer?.message ?? "the agent refused (HTTP \(response.status))")
        }
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return a == b }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// A path segment or query value, percent-encoded (names are shell-safe already; a
    /// name from a user's argument may not be).
    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~@"))) ?? text
    }
}

/// The agent cannot serve this request; do it without the agent.
public struct AgentUnavailable: Error, CustomStringConvertible {
    public var reason: String
    /// A reason the user must see even without `--verbose` (a socket that is not theirs).
    public var alarming = false
    public var description: String { reason }
}
