import CredentialService
import Foundation
import Hummingbird
import KeyManager
import NetworkRules
import VaultStore

/// Where `agent start --metrics` serves, and whether account names may be labels.
public struct MetricsSettings: Sendable {
    public var host: String
    public var port: Int
    /// Off for a vault of thousands of accounts: one expiry series per account and kind.
    public var accountLabels: Bool

    /// `HOST:PORT` on loopback only: the metrics name accounts and their state, for this
    /// machine's Prometheus, not the network.
    /// - Throws: ``AgentError/setup(_:)`` for anything else.
    public init(address: String, accountLabels: Bool = true) throws(AgentError) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65_535).contains(port) else {
            throw .setup("--metrics \(address): give HOST:PORT, say 127.0.0.1:9597")
        }
        let host = String(address[..<colon])
        guard Loopback.isLoopback(host: host) else {
            throw .setup("--metrics \(address): only a loopback address (127.0.0.1, [::1]): the metrics name accounts")
        }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        self.accountLabels = accountLabels
    }
}

/// The agent's Prometheus metrics (text exposition 0.0.4): counters kept as requests go,
/// the vault's state read at each scrape. Never a credential, an appkey or a secret: the
/// labels are kinds, states, KIS codes, routes and (unless turned off) account names.
public final class AgentMetrics: @unchecked Sendable {
    // @unchecked: every mutable field is touched under `lock`.
    private let lock = NSLock()
    let settings: MetricsSettings
    private var requests: [String: Int] = [:]          // route \t status
    private var kisOutcomes: [String: Int] = [:]       // path \t outcome
    private var issuances: [String: Int] = [:]         // kind \t outcome
    private var kisBuckets: [String: [Int]] = [:]      // path → counts per bucket
    private var kisSums: [String: Double] = [:]
    private var kisCounts: [String: Int] = [:]
    /// Seconds, for KIS's answers: most take tens of milliseconds, a retry storm seconds.
    static let buckets: [Double] = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    public init(settings: MetricsSettings) { self.settings = settings }

    /// One request to KIS ended (``KISClientConfiguration/observer``).
    func observeKIS(path: String, outcome: String, seconds: Double) {
        lock.withLock {
            kisOutcomes["\(path)\t\(outcome)", default: 0] += 1
            var counts = kisBuckets[path] ?? [Int](repeating: 0, count: Self.buckets.count)
            for (index, bound) in Self.buckets.enumerated() where seconds <= bound { counts[index] += 1 }
            kisBuckets[path] = counts
            kisSums[path, default: 0] += seconds
            kisCounts[path, default: 0] += 1
        }
    }

    /// KIS answered an issuance (``KeyManagerConfiguration/issuanceObserver``): `failure` nil
    /// for a credential issued, else its code.
    func observeIssuance(kind: CredentialKind, failure: String?) {
        let outcome = failure.map(Self.labelValue) ?? "issued"
        lock.withLock { issuances["\(kind.rawValue)\t\(outcome)", default: 0] += 1 }
    }

    /// A code from KIS's answer as a label value: KIS's codes (`EGW00133`) and our kinds
    /// (`unavailable`) as they are, anything else `other`, so a server cannot make series
    /// without end.
    static func labelValue(_ code: String) -> String {
        code.count <= 24 && !code.isEmpty && code.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-") } ? code : "other"
    }

    /// One request to the agent answered.
    func observeRequest(path: String, status: Int) {
        lock.withLock { requests["\(Self.route(path))\t\(status)", default: 0] += 1 }
    }

    /// A request's path with the account name taken out: routes, not accounts, are labels.
    static func route(_ path: String) -> String {
        var parts = path.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "/", omittingEmptySubsequences: false).map(String.init) } ?? []
        if parts.count > 3, parts[1] == "v1", parts[2] == "accounts" { parts[3] = ":name" }
        let route = parts.joined(separator: "/")
        return AgentRoutes.knownRoutes.contains(route) ? route : "other"
    }

    /// The exposition text at `now`.
    func render(state: AgentState, renewer: Renewer?) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            let text = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
            out += "\(name)\(text) \(Self.number(value))\n"
        }
        family("kisvault_agent_locked", "gauge", "1 while the agent is locked (it hands out nothing and renews nothing).")
        sample("kisvault_agent_locked", [], state.isLocked ? 1 : 0)
        if let manager = try? state.begin(activity: false) {
            defer { state.end(manager, activity: false) }
            let vault = manager.vault.vault
            let now = vault.now()
            family("kisvault_credentials", "gauge", "Stored credentials by kind and state (fresh, expiring within 10 minutes, expired, none, rejected).")
            var expiries: [(CredentialKind, String, Double)] = []
            for kind in CredentialKind.allCases {
                var states = Dictionary(uniqueKeysWithValues: CredentialState.allCases.map { ($0.rawValue, 0) })
                for snapshot in (try? vault.issuanceSnapshots(kind: kind)) ?? [] {
                    states[CredentialStatus(snapshot).state(at: now).rawValue, default: 0] += 1
                    if let current = snapshot.current { expiries.append((kind, snapshot.account, current.expiresAt.timeIntervalSince(now))) }
                }
                for (name, count) in states.sorted(by: { $0.key < $1.key }) { sample("kisvault_credentials", [("kind", kind.rawValue), ("state", name)], Double(count)) }
            }
            if settings.accountLabels {
                family("kisvault_credential_expiry_seconds", "gauge", "Seconds until each account's stored credential expires (negative: expired).")
                for (kind, account, left) in expiries { sample("kisvault_credential_expiry_seconds", [("kind", kind.rawValue), ("account", account)], left.rounded()) }
            } else {
                family("kisvault_credential_expiry_min_seconds", "gauge", "Seconds until the first stored credential of each kind expires.")
                for kind in CredentialKind.allCases {
                    if let first = expiries.filter({ $0.0 == kind }).map(\.2).min() { sample("kisvault_credential_expiry_min_seconds", [("kind", kind.rawValue)], first.rounded()) }
                }
            }
            if let last = try? vault.lastAuditTime() {
                family("kisvault_audit_last_append_timestamp_seconds", "gauge", "When the last audit row was written (Unix time).")
                sample("kisvault_audit_last_append_timestamp_seconds", [], last.timeIntervalSince1970.rounded())
            }
        }
        if let status = renewer?.status {
            family("kisvault_renewal_passes_total", "counter", "Background renewal passes made, by outcome (ok, or failed: some renewal in it failed).")
            sample("kisvault_renewal_passes_total", [("outcome", "ok")], Double(status.passes - status.failedPasses))
            sample("kisvault_renewal_passes_total", [("outcome", "failed")], Double(status.failedPasses))
            family("kisvault_renewal_failing_accounts", "gauge", "Accounts whose last background renewal failed, by kind.")
            for kind in CredentialKind.allCases { sample("kisvault_renewal_failing_accounts", [("kind", kind.rawValue)], Double(status.failing.filter { $0.kind == kind }.count)) }
        }
        let (requests, outcomes, issued, buckets, sums, totals) = lock.withLock { (self.requests, kisOutcomes, issuances, kisBuckets, kisSums, kisCounts) }
        family("kisvault_issuances_total", "counter", "KIS's answers to issuances, by kind and outcome (issued, or the failure's KIS code or kind), retries counted once.")
        for (key, count) in issued.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "\t").map(String.init)
            sample("kisvault_issuances_total", [("kind", parts[0]), ("outcome", parts[1])], Double(count))
        }
        family("kisvault_agent_requests_total", "counter", "Requests the agent answered, by route and HTTP status.")
        for (key, count) in requests.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "\t").map(String.init)
            sample("kisvault_agent_requests_total", [("route", parts[0]), ("status", parts[1])], Double(count))
        }
        family("kisvault_kis_requests_total", "counter", "Requests to KIS by path and outcome (ok, KIS's error code, unavailable, malformed).")
        for (key, count) in outcomes.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "\t").map(String.init)
            sample("kisvault_kis_requests_total", [("path", parts[0]), ("outcome", parts[1])], Double(count))
        }
        family("kisvault_kis_request_duration_seconds", "histogram", "How long requests to KIS took, retries counted one by one.")
        for path in buckets.keys.sorted() {
            let counts = buckets[path] ?? []
            for (index, bound) in Self.buckets.enumerated() {
                sample("kisvault_kis_request_duration_seconds_bucket", [("path", path), ("le", Self.number(bound))], Double(counts[index]))
            }
            sample("kisvault_kis_request_duration_seconds_bucket", [("path", path), ("le", "+Inf")], Double(totals[path] ?? 0))
            sample("kisvault_kis_request_duration_seconds_sum", [("path", path)], sums[path] ?? 0)
            sample("kisvault_kis_request_duration_seconds_count", [("path", path)], Double(totals[path] ?? 0))
        }
        return out
    }

    /// A label value as the exposition format writes it: backslash, quote and newline escaped.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
