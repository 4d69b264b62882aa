import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore

// The answers of a ``CredentialService``, and the agent's wire format (docs/CLI.md, "The
// agent"): snake_case JSON, times in the vault's text form (`Timestamp`).

/// An approval key or access token with its times. In JSON the value's field is named
/// for its kind (`approval_key` or `access_token`), as the agent has always answered.
public struct CredentialAnswer: Sendable, Codable {
    public var kind: CredentialKind
    public var value: SecureBytes
    public var issuedAt: Date
    public var expiresAt: Date
    /// True when it came from the vault without a request to KIS.
    public var fromCache: Bool

    public init(kind: CredentialKind, value: SecureBytes, issuedAt: Date, expiresAt: Date, fromCache: Bool) {
        self.kind = kind
        self.value = value
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.fromCache = fromCache
    }

    init(_ issued: IssuedCredential, kind: CredentialKind) {
        self.init(kind: kind, value: issued.value, issuedAt: issued.times.issuedAt, expiresAt: issued.times.expiresAt, fromCache: issued.fromCache)
    }

    /// The value as text, checked to be in KIS's shape for its kind: a value stored by an
    /// older kisvault (or sent by a confused agent) with a control character in it must
    /// not reach a terminal or a script's header.
    /// - Throws: ``ServiceError`` `bad_request`, naming `account` and the fix.
    public func checkedText(account: String) throws(ServiceError) -> String {
        let text = value.utf8String()
        guard kind == .approval ? KISShapes.isApprovalKey(text) : KISShapes.isAccessToken(text) else {
            throw ServiceError(.badRequest, "the stored \(kind.noun) of '\(account)' is not in KIS's shape (\(value.count) bytes); it was not printed: replace it with 'kisvault \(kind == .approval ? "approval" : "token") rotate \(account)'")
        }
        return text
    }

    enum CodingKeys: String, CodingKey {
        case approvalKey = "approval_key", accessToken = "access_token", issuedAt = "issued_at", expiresAt = "expires_at", fromCache = "from_cache"
    }

    /// The answer as a JSON object: the same fields its Codable form has, for the one
    /// answer on the path a script waits for (`approval get` through the agent), where
    /// Foundation's JSONSerialization costs a fraction of a JSONEncoder/JSONDecoder's
    /// first use in a fresh process (docs/BENCHMARKS.md, "Service boundary").
    public var jsonObject: [String: Any] {
        [(kind == .approval ? CodingKeys.approvalKey : .accessToken).rawValue: value.utf8String(),
         CodingKeys.issuedAt.rawValue: Timestamp.string(issuedAt), CodingKeys.expiresAt.rawValue: Timestamp.string(expiresAt),
         CodingKeys.fromCache.rawValue: fromCache]
    }

    /// Reads what ``jsonObject`` (or the Codable form) wrote; nil for anything else.
    public init?(jsonObject object: [String: Any]) {
        let text = object[CodingKeys.approvalKey.rawValue] as? String ?? object[CodingKeys.accessToken.rawValue] as? String
        guard let text, let issued = (object[CodingKeys.issuedAt.rawValue] as? String).flatMap(Timestamp.parse),
              let expires = (object[CodingKeys.expiresAt.rawValue] as? String).flatMap(Timestamp.parse) else { return nil }
        self.init(kind: object[CodingKeys.approvalKey.rawValue] != nil ? .approval : .token, value: SecureBytes(utf8: text),
                  issuedAt: issued, expiresAt: expires, fromCache: object[CodingKeys.fromCache.rawValue] as? Bool ?? true)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let key = try c.decodeIfPresent(String.self, forKey: .approvalKey) {
            kind = .approval
            value = SecureBytes(utf8: key)
        } else {
            kind = .token
            value = SecureBytes(utf8: try c.decode(String.self, forKey: .accessToken))
        }
        issuedAt = try Wire.date(c, .issuedAt)
        expiresAt = try Wire.date(c, .expiresAt)
        fromCache = try c.decodeIfPresent(Bool.self, forKey: .fromCache) ?? true
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(value.utf8String(), forKey: kind == .approval ? .approvalKey : .accessToken)
        try c.encode(Timestamp.string(issuedAt), forKey: .issuedAt)
        try c.encode(Timestamp.string(expiresAt), forKey: .expiresAt)
        try c.encode(fromCache, forKey: .fromCache)
    }
}

/// What KIS REST calls need in their headers: an account's appkey and appsecret, and its
/// account number and HTS id when stored.
public struct AppCredentials: Sendable, Codable {
    public var environment: AccountEnvironment
    public var appkey: SecureBytes
    public var appsecret: SecureBytes
    public var accountNumber: SecureBytes?
    public var htsID: SecureBytes?

    public init(environment: AccountEnvironment, secrets: AccountSecrets) {
        self.environment = environment
        appkey = secrets.appkey
        appsecret = secrets.appsecret
        accountNumber = secrets.accountNumber
        htsID = secrets.htsID
    }

    public var secrets: AccountSecrets {
        AccountSecrets(appkey: appkey, appsecret: appsecret, accountNumber: accountNumber, htsID: htsID)
    }

    enum CodingKeys: String, CodingKey {
        case environment, appkey, appsecret, accountNumber = "account_no", htsID = "hts_id"
    }
}

/// An account's plaintext metadata.
public struct AccountInfo: Sendable, Codable, Equatable {
    public var name: String
    public var environment: AccountEnvironment
    public var tags: [String]
    public var createdAt: String
    public var updatedAt: String

    public init(_ summary: AccountSummary) {
        name = summary.name
        environment = summary.environment
        tags = summary.tags
        createdAt = summary.createdAt
        updatedAt = summary.updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case name, environment, tags, createdAt = "created_at", updatedAt = "updated_at"
    }
}

/// The agent's `/v1/accounts` answer.
public struct AccountList: Sendable, Codable {
    public var accounts: [AccountInfo]

    public init(accounts: [AccountInfo]) { self.accounts = accounts }
}

/// What revoking a token came to.
public struct RevokeAnswer: Sendable, Codable, Equatable {
    /// KIS revoked it.
    public var revoked: Bool
    /// KIS no longer knew it (EGW00121: expired, or revoked elsewhere); it was forgotten.
    public var alreadyInvalid: Bool

    public init(revoked: Bool, alreadyInvalid: Bool) {
        self.revoked = revoked
        self.alreadyInvalid = alreadyInvalid
    }

    enum CodingKeys: String, CodingKey { case revoked, alreadyInvalid = "already_invalid" }
}

/// One account's credential state of one kind, without secrets.
/// What a stored credential is, at a time: the one freshness rule of listings, `status` and
/// the agent's metrics.
public enum CredentialState: String, Sendable, Codable, CaseIterable {
    case fresh, expiring, expired, none, rejected

    /// What "expiring" means where nobody says: ten minutes left.
    public static let expiringWithin: TimeInterval = 600
}

public struct CredentialStatus: Sendable, Codable {
    public var account: String
    public var environment: AccountEnvironment
    public var kind: CredentialKind
    /// The current credential's times (text form), nil when none is stored.
    public var issuedAt: String?
    public var expiresAt: String?
    /// Set when KIS rejected the appkey/appsecret; cleared when they are edited.
    public var rejectedCode: String?
    public var rejectedMessage: String?
    public var lastError: String?

    public init(_ snapshot: IssuanceSnapshot) {
        account = snapshot.account
        environment = snapshot.environment
        kind = snapshot.kind
        issuedAt = snapshot.current.map { Timestamp.string($0.issuedAt) }
        expiresAt = snapshot.current.map { Timestamp.string($0.expiresAt) }
        rejectedCode = snapshot.rejectedCode
        rejectedMessage = snapshot.rejectedMessage
        lastError = snapshot.lastError
    }

    /// Its state at `now` (the vault's clock): rejected, none stored, expired, expiring
    /// within `expiringWithin`, else fresh.
    public func state(at now: Date, expiringWithin: TimeInterval = CredentialState.expiringWithin) -> CredentialState {
        if rejectedCode != nil { return .rejected }
        guard let expires = expiresAt.flatMap(Timestamp.parse) else { return .none }
        let left = expires.timeIntervalSince(now)
        return left <= 0 ? .expired : left < expiringWithin ? .expiring : .fresh
    }

    enum CodingKeys: String, CodingKey {
        case account, environment, kind, issuedAt = "issued_at", expiresAt = "expires_at", rejectedCode = "rejected_code",
             rejectedMessage = "rejected_message", lastError = "last_error"
    }
}

/// A bulk run: which accounts (names, every one, or those with a tag) and how.
public struct BulkRequest: Sendable, Codable {
    public var kind: CredentialKind
    public var mode: BulkMode
    /// The named accounts; empty with `all` or `tag`.
    public var accounts: [String] = []
    public var all = false
    public var tag: String?
    public var concurrency = 16
    /// Requests per second per KIS host, across all workers.
    public var rate: Double = 1000
    public var force = false
    public var dryRun = false
    public var minTTL: TimeInterval = CredentialRules.defaultMinTTL
    /// Tokens: revoke each rotated account's previous token at KIS.
    public var revokeOld = false
    /// The longest one account waits for KIS, retries included; nil: the server's own.
    public var timeout: TimeInterval?

    public init(kind: CredentialKind, mode: BulkMode) {
        self.kind = kind
        self.mode = mode
    }

    enum CodingKeys: String, CodingKey {
        case kind, mode, accounts, all, tag, concurrency, rate, force, dryRun = "dry_run", minTTL = "min_ttl", revokeOld = "revoke_old", timeout
    }

    /// Workers in flight at once.
    public static let concurrencyRange = 1...1024
    /// Requests per second per KIS host: positive and finite (KIS allows 20 a second to an
    /// appkey; a larger figure only means "no limit of ours").
    public static let rateRange: ClosedRange<Double> = 0.001...100_000
    /// The longest one account waits for KIS, retries included (the CLI's `--timeout`).
    public static let timeoutRange: ClosedRange<TimeInterval> = 1...600

    /// What is out of range, naming the wire field; nil when every field is usable. Every
    /// way in (the CLI's options, an agent's JSON) is checked here before anything acts.
    public var problem: String? {
        if !Self.concurrencyRange.contains(concurrency) { return "concurrency must be \(Self.concurrencyRange.lowerBound) to \(Self.concurrencyRange.upperBound)" }
        if !(rate.isFinite && Self.rateRange.contains(rate)) { return "rate must be a number of requests per second from 0.001 to 100000" }
        if !(minTTL.isFinite && (0..<CredentialRules.shortestLifetime).contains(minTTL)) {
            return "min_ttl must be seconds from 0 to \(Int(CredentialRules.shortestLifetime) - 1): no credential lives longer than 24h"
        }
        if let timeout, !(timeout.isFinite && Self.timeoutRange.contains(timeout)) { return "timeout must be seconds from 1 to 600" }
        return nil
    }
}

/// One line of the agent's streamed bulk answer (`application/x-ndjson`): progress while
/// the run goes, then the results, or an error.
public struct BulkStreamLine: Sendable, Codable {
    public struct Counts: Sendable, Codable {
        public var total: Int, done: Int, failed: Int, skipped: Int

        public init(total: Int, done: Int, failed: Int, skipped: Int) {
            self.total = total
            self.done = done
            self.failed = failed
            self.skipped = skipped
        }
    }

    public var progress: Counts?
    public var results: [BulkItemResult]?
    public var error: ErrorCode?
    public var message: String?

    public init(progress: Counts? = nil, results: [BulkItemResult]? = nil, error: ErrorCode? = nil, message: String? = nil) {
        self.progress = progress
        self.results = results
        self.error = error
        self.message = message
    }
}

/// The KIS URLs credentials are for, per environment: REST and WebSocket.
public struct KISURLs: Sendable, Codable, Equatable {
    public var real: String
    public var mock: String
    public var realWebSocket: String
    public var mockWebSocket: String

    enum CodingKeys: String, CodingKey {
        case real, mock, realWebSocket = "real_websocket", mockWebSocket = "mock_websocket"
    }

    /// The KIS client's endpoints as the service names them (a front end does not import
    /// the KIS client).
    public init(_ endpoints: KISEndpoints) {
        real = endpoints.real
        mock = endpoints.mock
        realWebSocket = endpoints.realWebSocket
        mockWebSocket = endpoints.mockWebSocket
    }

    /// The URLs the environment (`KISVAULT_KIS_*`) names.
    /// - Throws: ``ServiceError`` `bad_request` for a URL kisvault refuses.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws(ServiceError) -> KISURLs {
        do { return KISURLs(try KISEndpoints.fromEnvironment(env)) } catch { throw ServiceError(.badRequest, error.description) }
    }

    /// The same URLs as the KIS client takes them.
    public var endpoints: KISEndpoints { KISEndpoints(real: real, mock: mock, realWebSocket: realWebSocket, mockWebSocket: mockWebSocket) }

    public func rest(_ environment: AccountEnvironment) -> String { environment == .real ? real : mock }
    public func webSocket(_ environment: AccountEnvironment) -> String { environment == .real ? realWebSocket : mockWebSocket }
}

/// An error with its stable code and message: what the agent answers in
/// `{"error": CODE, "message": ...}`, and what the CLI turns into an exit status.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Any error as a service error: its code from ``ErrorCode/of(_:)``.
    public init(_ error: any Error) {
        if let error = error as? ServiceError { self = error; return }
        self.init(ErrorCode.of(error) ?? .vaultError, "\(error)")
    }
}

/// KIS's rules a front-end checks input against.
public enum CredentialRules {
    /// No approval key or token lives longer than this: a `--min-ttl` must be shorter.
    public static let shortestLifetime = KISFacts.shortestLifetime
    /// The longest lifetime an answer may claim; a stored time beyond it is not believed.
    public static let longestLifetime = KISFacts.longestTokenLifetime
    /// The `--min-ttl` (and agent `min_ttl`) when none is given.
    public static let defaultMinTTL = BulkOptions.defaultMinTTL
    /// Whether `text` looks like an access token KIS issues.
    public static func isAccessToken(_ text: String) -> Bool { KISShapes.isAccessToken(text) }
    /// `date` as KIS writes times: `yyyy-MM-dd HH:mm:ss`, Korea time.
    public static func koreaTime(_ date: Date) -> String { KoreaTime.format(date) }
}

extension CredentialKind {
    /// How users call it.
    public var noun: String { self == .approval ? "approval key" : "access token" }
}

extension SecureBytes: Codable {
    /// Secrets travel as JSON strings (the agent's wire format); decoded into guarded memory.
    public convenience init(from decoder: any Decoder) throws {
        self.init(utf8: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(utf8String())
    }
}

enum Wire {
    static func date<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Date {
        let text = try c.decode(String.self, forKey: key)
        guard let date = Timestamp.parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not a time: \(text)")
        }
        return date
    }
}
