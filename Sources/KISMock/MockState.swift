import Foundation

/// Everything the mock remembers: issued tokens, the clock offset, rate windows, stats.
/// One lock around it, so concurrent requests see one consistent KIS. A lock rather than an
/// actor: every request touches the state several times, and each actor hop would queue
/// behind whatever else runs on Swift's small cooperative pool (two threads here).
public final class MockState: @unchecked Sendable {
    private let lock = NSLock()
    struct Token {
        var value: String
        var issuedAt: Date
        var expiresAt: Date
        /// True when this answer hands back a token issued earlier (the 6-hour reuse).
        var handedBack = false
    }

    /// A queued error that the next matching requests answer with (test hook).
    struct ForcedError {
        var path: String?
        var code: String
        var status: Int
        var dataShape: Bool
        var remaining: Int
    }

    let configuration: MockConfiguration
    /// Fixed at start: read without the lock.
    let accountsByKey: [String: MockAccount]
    private var clockOffset: TimeInterval = 0
    /// Every token issued per appkey, newest last: as at KIS, each stays valid until it
    /// expires or is revoked, whatever was issued after it.
    private var tokens: [String: [Token]] = [:]
    /// Every token ever issued, by value: which appkey it belongs to and when it ends, kept
    /// after it expires or is revoked so a data endpoint can tell "expired" (EGW00123)
    /// from "not ours" (EGW00121).
    private var issued: [String: (appkey: String, expiresAt: Date, revoked: Bool)] = [:]
    /// Every approval key issued, by value: its appkey and end (the WebSocket checks them).
    private var approvals: [String: (appkey: String, expiresAt: Date)] = [:]
    private var lastTokenIssue: [String: Date] = [:]
    private var secondWindow: [String: (second: Int64, count: Int)] = [:]
    private var forced: [ForcedError] = []
    private var rng: SeededGenerator

    /// The WebSocket session holding each appkey (one per appkey, as at KIS).
    private var sessions: [String: UUID] = [:]
    private var webSocket: [String: Int] = ["sessions_opened": 0, "sessions_open": 0]

    private var requestsByPath: [String: Int] = [:]
    private var outcomes: [String: Int] = [:]
    private var perAccount: [String: [String: Int]] = [:]

    init(configuration: MockConfiguration) {
        self.configuration = configuration
        accountsByKey = Dictionary(configuration.accounts.map { ($0.appkey, $0) }, uniquingKeysWith: { a, _ in a })
        rng = SeededGenerator(seed: configuration.seed)
    }

    /// The mock's idea of now: the wall clock plus whatever tests advanced it by.
    func now() -> Date {
        lock.lock(); defer { lock.unlock() }
        return currentTime()
    }

    private func currentTime() -> Date { Date().addingTimeInterval(clockOffset) }

    func advanceClock(by seconds: TimeInterval) {
        lock.lock(); defer { lock.unlock() }
        clockOffset += seconds
    }

    func reset() {
        lock.lock(); defer { lock.unlock() }
        clockOffset = 0
        tokens = [:]
        issued = [:]
        approvals = [:]
        lastTokenIssue = [:]
        secondWindow = [:]
        forced = []
        requestsByPath = [:]
        webSocket = ["sessions_opened": 0, "sessions_open": webSocket["sessions_open"] ?? 0]
        outcomes = [:]
        perAccount = [:]
        rng = SeededGenerator(seed: configuration.seed)
    }

    func countRequest(path: String) {
        lock.lock(); defer { lock.unlock() }
        requestsByPath[path, default: 0] += 1
    }

    func countOutcome(_ outcome: String, path: String, appkey: String?) {
        lock.lock(); defer { lock.unlock() }
        outcomes[outcome, default: 0] += 1
        let who = appkey.flatMap { accountsByKey[$0]?.name } ?? "unknown"
        perAccount[who, default: [:]][path, default: 0] += 1
    }

    /// Latency to add to this request, and the fault to inject, if any.
    func plan() -> (latency: TimeInterval, fault: MockFault?) {
        lock.lock(); defer { lock.unlock() }
        var latency = configuration.latencyMilliseconds
        if configuration.latencyJitterMilliseconds > 0 {
            latency += Double(rng.next() % 1_000_000) / 1_000_000 * configuration.latencyJitterMilliseconds
        }
        var fault: MockFault?
        if configuration.failRate > 0, Double(rng.next() % 1_000_000) / 1_000_000 < configuration.failRate {
            let kinds = configuration.faults.isEmpty ? [MockFault.serverError] : configuration.faults
            fault = kinds[Int(rng.next() % UInt64(kinds.count))]
        }
        return (latency / 1000, fault)
    }

    func coin() -> Bool {
        lock.lock(); defer { lock.unlock() }
        return rng.next() % 2 == 0
    }

    func force(_ error: ForcedError) {
        lock.lock(); defer { lock.unlock() }
        forced.append(error)
    }

    func takeForced(path: String) -> ForcedError? {
        lock.lock(); defer { lock.unlock() }
        guard let index = forced.firstIndex(where: { $0.path == nil || $0.path == path }) else { return nil }
        let error = forced[index]
        forced[index].remaining -= 1
        if forced[index].remaining <= 0 { forced.remove(at: index) }
        return error
    }

    /// Counts a request against the appkey's per-second limit; false when over it.
    func admit(appkey: String, environment: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let second = Int64(Date().timeIntervalSince1970)
        let limit = environment == "real" ? configuration.perSecondLimitReal : configuration.perSecondLimitMock
        var window = secondWindow[appkey] ?? (second, 0)
        if window.second != second { window = (second, 0) }
        window.count += 1
        secondWindow[appkey] = window
        return window.count <= limit
    }

    /// KIS's tokenP rules: refuse within 60 s of the last issuance, hand back the same
    /// token while it is under 6 hours old, a new one after.
    func issueToken(appkey: String, make: (Date, Date) -> String) -> Token? {
        lock.lock(); defer { lock.unlock() }
        let now = currentTime()
        if let last = lastTokenIssue[appkey], now.timeIntervalSince(last) < 60 { return nil }
        lastTokenIssue[appkey] = now
        var list = (tokens[appkey] ?? []).filter { $0.expiresAt > now }
        if let newest = list.last, now.timeIntervalSince(newest.issuedAt) < 6 * 3600 {
            tokens[appkey] = list
            var again = newest
            again.handedBack = true
            return again
        }
        let expires = now.addingTimeInterval(86_400)
        let token = Token(value: make(now, expires), issuedAt: now, expiresAt: expires)
        list.append(token)
        tokens[appkey] = list
        issued[token.value] = (appkey, expires, false)
        return token
    }

    /// Records an approval key handed out for `appkey`; valid 24 hours on the mock's clock.
    func issueApproval(appkey: String, key: String) {
        lock.lock(); defer { lock.unlock() }
        approvals[key] = (appkey, currentTime().addingTimeInterval(86_400))
    }

    /// What a WebSocket session's approval key is: the appkey it opens a session for, or
    /// why it opens none.
    enum ApprovalCheck: Equatable {
        case valid(appkey: String)
        case unknown
        case expired
    }

    func checkApproval(_ key: String) -> ApprovalCheck {
        lock.lock(); defer { lock.unlock() }
        guard let approval = approvals[key] else { return .unknown }
        return approval.expiresAt > currentTime() ? .valid(appkey: approval.appkey) : .expired
    }

    /// Takes `appkey`'s one WebSocket session for session `id`; false when another holds it.
    func claimSession(appkey: String, id: UUID) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if let holder = sessions[appkey], holder != id { return false }
        sessions[appkey] = id
        return true
    }

    func releaseSession(appkey: String, id: UUID) {
        lock.lock(); defer { lock.unlock() }
        if sessions[appkey] == id { sessions[appkey] = nil }
    }

    func webSocketOpened() {
        lock.lock(); defer { lock.unlock() }
        webSocket["sessions_opened", default: 0] += 1
        webSocket["sessions_open", default: 0] += 1
    }

    func webSocketClosed() {
        lock.lock(); defer { lock.unlock() }
        webSocket["sessions_open", default: 0] -= 1
    }

    /// Counts an answer of the WebSocket (`OPSP0000`, ...) or `malformed`.
    func countWebSocket(_ outcome: String) {
        lock.lock(); defer { lock.unlock() }
        webSocket[outcome, default: 0] += 1
    }

    /// What a data endpoint makes of a bearer token presented with `appkey`.
    enum TokenCheck: Equatable {
        case valid
        /// Unknown, revoked, or another appkey's: EGW00121.
        case invalid
        /// One of this appkey's, past its end: EGW00123.
        case expired
    }

    func checkToken(appkey: String, token: String) -> TokenCheck {
        lock.lock(); defer { lock.unlock() }
        guard let known = issued[token], known.appkey == appkey, !known.revoked else { return .invalid }
        return known.expiresAt > currentTime() ? .valid : .expired
    }

    /// Revokes `token` if it is one of `appkey`'s valid tokens; false for an unknown,
    /// expired, already revoked or other appkey's token (EGW00121 at KIS).
    func revoke(appkey: String, token: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let now = currentTime()
        guard var list = tokens[appkey], let index = list.firstIndex(where: { $0.value == token && $0.expiresAt > now }) else { return false }
        list.remove(at: index)
        tokens[appkey] = list
        issued[token]?.revoked = true
        return true
    }

    /// True while `token` is one of `appkey`'s valid tokens (not expired, not revoked).
    func isValid(appkey: String, token: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let now = currentTime()
        return tokens[appkey]?.contains { $0.value == token && $0.expiresAt > now } ?? false
    }

    /// The statistics served at `/__mock/stats`, as JSON.
    /// Requests by path, outcomes, per-account counts and the clock offset, as
    /// `/__mock/stats` answers them.
    public func statsSnapshot() -> [String: Any] {
        lock.lock(); defer { lock.unlock() }
        return stats()
    }

    public func statsJSON() -> Data {
        lock.lock(); defer { lock.unlock() }
        return (try? JSONSerialization.data(withJSONObject: stats(), options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    func stats() -> [String: Any] {
        var requests: [String: Int] = ["/oauth2/Approval": 0, "/oauth2/tokenP": 0, "/oauth2/revokeP": 0, MockRoutes.hashkeyPath: 0, MockRoutes.pricePath: 0]
        for (k, v) in requestsByPath { requests[k] = v }
        return ["requests": requests, "outcomes": outcomes, "per_account": perAccount, "clock_offset_seconds": clockOffset, "websocket": webSocket]
    }
}
