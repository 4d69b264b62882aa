import Foundation
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

// What a client asks of a running agent about itself, and the answers: the agent's side of
// these is KisvaultAgent's; these are here so that a front end needs only the service.

/// The body of every error answer.
public struct ErrorAnswer: Sendable, Codable {
    public var error: ErrorCode
    public var message: String

    public init(error: ErrorCode, message: String) {
        self.error = error
        self.message = message
    }
}

/// How the agent and its clients write JSON: keys sorted.
public enum AgentJSON {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}

/// `GET /v1/status`.
public struct AgentStatusAnswer: Sendable, Codable {
    public var locked: Bool
    public var lockReason: String?
    public var vault: String
    public var pid: Int
    public var startedAt: String
    public var idleLockSeconds: Double?
    public var maxLockSeconds: Double?
    public var kisURLs: KISURLs
    /// Background renewal (`agent start --renew-before`), null without it.
    public var renewal: RenewalStatus?

    public init(locked: Bool, lockReason: String?, vault: String, pid: Int, startedAt: String, idleLockSeconds: Double?,
                maxLockSeconds: Double?, kisURLs: KISURLs, renewal: RenewalStatus?) {
        self.locked = locked
        self.lockReason = lockReason
        self.vault = vault
        self.pid = pid
        self.startedAt = startedAt
        self.idleLockSeconds = idleLockSeconds
        self.maxLockSeconds = maxLockSeconds
        self.kisURLs = kisURLs
        self.renewal = renewal
    }

    enum CodingKeys: String, CodingKey {
        case locked, lockReason = "lock_reason", vault, pid, startedAt = "started_at", idleLockSeconds = "idle_lock_seconds",
             maxLockSeconds = "max_lock_seconds", kisURLs = "kis_urls", renewal
    }

    public func encode(to encoder: any Encoder) throws {
        // Absent values are null, as documented, not left out.
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(locked, forKey: .locked)
        try c.encode(lockReason, forKey: .lockReason)
        try c.encode(vault, forKey: .vault)
        try c.encode(pid, forKey: .pid)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(idleLockSeconds, forKey: .idleLockSeconds)
        try c.encode(maxLockSeconds, forKey: .maxLockSeconds)
        try c.encode(kisURLs, forKey: .kisURLs)
        try c.encode(renewal, forKey: .renewal)
    }
}

/// `POST /v1/lock` and `/v1/unlock`.
public struct LockAnswer: Sendable, Codable {
    public var locked: Bool
    public init(locked: Bool) { self.locked = locked }
}
/// `POST /v1/stop`.
public struct StopAnswer: Sendable, Codable {
    public var stopping: Bool
    public init(stopping: Bool) { self.stopping = stopping }
}

/// What `GET /v1/status` says about renewal (`renewal`, null without `--renew-before`).
public struct RenewalStatus: Sendable, Codable, Equatable {
    /// An account whose renewal failed, and when it is tried again.
    public struct Failing: Sendable, Codable, Equatable {
        public var account: String
        public var kind: CredentialKind
        public var errorCode: String?
        public var message: String
        public var attempts: Int
        public var nextAttemptAt: String

        public init(account: String, kind: CredentialKind, errorCode: String?, message: String, attempts: Int, nextAttemptAt: String) {
            self.account = account
            self.kind = kind
            self.errorCode = errorCode
            self.message = message
            self.attempts = attempts
            self.nextAttemptAt = nextAttemptAt
        }

        enum CodingKeys: String, CodingKey {
            case account, kind, errorCode = "error_code", message, attempts, nextAttemptAt = "next_attempt_at"
        }
    }

    public var beforeSeconds: Double
    public var tag: String?
    public var intervalSeconds: Double
    /// Passes made (a pass while locked does nothing and is not counted).
    public var passes: Int
    /// Of those, the passes in which some renewal failed (or the accounts could not be
    /// listed).
    public var failedPasses: Int
    public var lastPassAt: String?
    /// Credentials renewed since the agent started, by kind.
    public var renewedApprovalKeys: Int
    public var renewedTokens: Int
    public var failing: [Failing]

    public init(beforeSeconds: Double, tag: String?, intervalSeconds: Double, passes: Int, failedPasses: Int, lastPassAt: String?,
                renewedApprovalKeys: Int, renewedTokens: Int, failing: [Failing]) {
        self.beforeSeconds = beforeSeconds
        self.tag = tag
        self.intervalSeconds = intervalSeconds
        self.passes = passes
        self.failedPasses = failedPasses
        self.lastPassAt = lastPassAt
        self.renewedApprovalKeys = renewedApprovalKeys
        self.renewedTokens = renewedTokens
        self.failing = failing
    }

    enum CodingKeys: String, CodingKey {
        case beforeSeconds = "before_seconds", tag, intervalSeconds = "interval_seconds", passes, failedPasses = "failed_passes", lastPassAt = "last_pass_at",
             renewedApprovalKeys = "renewed_approval_keys", renewedTokens = "renewed_tokens", failing
    }
}

/// Asking a running agent about itself, and locking or unlocking it: typed calls over its
/// socket for `agent status`, `lock` and `unlock`.
public enum AgentControl {
    /// `GET /v1/status`.
    /// - Throws: ``AgentError/notRunning(_:)`` when nothing answers.
    public static func status(socket: String, timeout: TimeInterval = 5) throws -> AgentStatusAnswer {
        let response = try AgentClient.request(socket: socket, method: "GET", target: "/v1/status", timeout: timeout)
        guard let status = try? JSONDecoder().decode(AgentStatusAnswer.self, from: response.body) else {
            throw AgentError.protocolError("the answer at \(socket) is not an agent's status")
        }
        return status
    }

    /// `POST /v1/lock`.
    public static func lock(socket: String) throws {
        _ = try AgentClient.request(socket: socket, method: "POST", target: "/v1/lock")
    }

    /// `POST /v1/unlock`, the passphrase as the body (wiped afterwards).
    /// - Throws: ``ServiceError`` with the agent's code (`locked` for a wrong passphrase).
    public static func unlock(socket: String, passphrase: SecureBytes, keyslot: String?) throws {
        var body = passphrase.withUnsafeBytes { Array($0) }
        defer { body.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let target = "/v1/unlock" + (keyslot.map { "?keyslot=\(AgentCredentialService.escape($0))" } ?? "")
        let response = try AgentClient.request(socket: socket, method: "POST", target: target, body: body, timeout: 60)
        guard response.status == 200 else {
            let answer = try? JSONDecoder().decode(ErrorAnswer.self, from: response.body)
            throw ServiceError(answer?.error ?? .vaultError, answer?.message ?? "the agent refused (HTTP \(response.status))")
        }
    }

    /// Asks the agent to stop and waits (up to 2 s) for its socket to go.
    /// - Throws: ``AgentError/notRunning(_:)`` when nothing answers.
    public static func stop(socket socketPath: String) throws(AgentError) {
        _ = try AgentClient.request(socket: socketPath, method: "POST", target: "/v1/stop")
        for _ in 0..<100 where FileManager.default.fileExists(atPath: socketPath) { usleep(20_000) }
    }
}
