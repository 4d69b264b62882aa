import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

/// One account's `approval check`: its stored key tried in a KIS WebSocket session.
public struct ApprovalKeyCheck: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable { case ok, rejected, inUse = "in-use", unreachable, none, expired }

    public var account: String
    public var state: State
    public var errorCode: String?
    public var message: String?

    /// The error code of a lone account's check that is not ok (a front end's exit status).
    public var code: ErrorCode? {
        switch state {
        case .ok: nil
        case .rejected, .inUse: .kisRejected
        case .unreachable: .kisUnavailable
        case .none, .expired: .notFound
        }
    }

    static func of(_ name: String, _ outcome: KISWebSocketCheck.Outcome) -> ApprovalKeyCheck {
        switch outcome {
        case .ok: ApprovalKeyCheck(account: name, state: .ok)
        case .inUse: ApprovalKeyCheck(account: name, state: .inUse, errorCode: "OPSP8996", message: "another session holds this appkey")
        case .rejected(let code, let message): ApprovalKeyCheck(account: name, state: .rejected, errorCode: code, message: message)
        case .unreachable(let reason): ApprovalKeyCheck(account: name, state: .unreachable, message: reason)
        }
    }
}

/// `token check`: what KIS said of the stored token, and of its replacement with `--reissue`.
public struct TokenCheck: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable { case ok, invalid, expired }

    public var account: String
    public var state: State
    public var errorCode: String?
    public var reissued: Bool
    public var expiresAt: String?
}

extension CredentialService {
    /// Tries each named account's stored approval key in a WebSocket session (register one
    /// stock, unregister, close), at most `concurrency` sessions at once, in `names` order.
    /// `statuses` are the accounts' stored states (``status(_:tag:)``); an account without a
    /// live key is `none` or `expired`, never issued one.
    public func checkApprovalKeys(_ names: [String], statuses: [String: CredentialStatus], concurrency: Int,
                                  timeout: TimeInterval) async throws -> [ApprovalKeyCheck] {
        // The keys first (one unlock, or the agent), then the sessions.
        var keys: [String: (key: String, url: String)] = [:]
        var reports: [String: ApprovalKeyCheck] = [:]
        let now = try await clock()
        for name in names {
            guard let status = statuses[name], let end = status.expiresAt.flatMap(Timestamp.parse) else {
                reports[name] = ApprovalKeyCheck(account: name, state: .none, message: "no approval key stored")
                continue
            }
            guard end > now else {
                reports[name] = ApprovalKeyCheck(account: name, state: .expired, message: "the stored key ended at \(status.expiresAt ?? "?")")
                continue
            }
            let answer = try await credential(.approval, account: name, minTTL: 0)
            keys[name] = (try answer.checkedText(account: name), kisURLs.webSocket(status.environment))
        }
        try await withThrowingTaskGroup(of: ApprovalKeyCheck.self) { group in
            var pending = names.filter { keys[$0] != nil }.makeIterator()
            func startNext() {
                guard let name = pending.next(), let (key, url) = keys[name] else { return }
                group.addTask { ApprovalKeyCheck.of(name, await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: timeout)) }
            }
            for _ in 0..<concurrency { startNext() }
            for try await report in group {
                reports[report.account] = report
                startNext()
            }
        }
        return names.compactMap { reports[$0] }
    }

    /// Asks KIS, with one cheap data call, whether `account`'s stored token works; with
    /// `reissue`, replaces an invalid or expired one (single flight, as an invalidation
    /// does) and checks the new one. `app` are the account's app credentials, handed out
    /// (and audited) by the caller for this check.
    public func checkToken(account: String, stored status: CredentialStatus, app: AppCredentials, reissue: Bool,
                           minTTL: TimeInterval) async throws -> TokenCheck {
        let client = try KISClient(configuration: KISClientConfiguration(endpoints: kisURLs.endpoints))
        do {
            let report = try await checkToken(account: account, stored: status, app: app, reissue: reissue, minTTL: minTTL, client: client)
            await client.shutdown()
            return report
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private func checkToken(account: String, stored status: CredentialStatus, app: AppCredentials, reissue: Bool, minTTL: TimeInterval,
                            client: KISClient) async throws -> TokenCheck {
        // The stored token as it is: 0 s asked for, so one past its stored end is
        // replaced only by the reissue below.
        let end = status.expiresAt.flatMap(Timestamp.parse) ?? .distantPast
        var answer: CredentialAnswer?
        var state = TokenCheck.State.expired, code: String? = nil
        if end > (try await clock()) {
            let current = try await credential(.token, account: account, minTTL: 0)
            answer = current
            (state, code) = try await Self.ask(client, account: account, app: app, token: try current.checkedText(account: account))
        }
        guard reissue, state != .ok else {
            return TokenCheck(account: account, state: state, errorCode: code, reissued: false, expiresAt: status.expiresAt)
        }
        let next: CredentialAnswer
        if let answer {
            next = try await invalidateToken(account: account, deadToken: answer.value, minTTL: minTTL)
        } else {
            next = try await credential(.token, account: account, minTTL: minTTL)
        }
        let (after, afterCode) = try await Self.ask(client, account: account, app: app, token: try next.checkedText(account: account))
        return TokenCheck(account: account, state: after, errorCode: afterCode, reissued: true, expiresAt: Timestamp.string(next.expiresAt))
    }

    /// What KIS says of `token`: ok, or why not; any other failure is thrown.
    private static func ask(_ client: KISClient, account: String, app: AppCredentials, token: String) async throws -> (TokenCheck.State, String?) {
        do {
            try await client.checkToken(environment: app.environment == .real ? .real : .mock, appkey: app.appkey.utf8String(),
                                        secret: app.appsecret.utf8String(), token: token)
            return (.ok, nil)
        } catch where error.kind == .tokenInvalid {
            return (error.code == "EGW00123" ? .expired : .invalid, error.code)
        } catch {
            throw KeyManagerError.kis(account: account, error)
        }
    }
}
