import CredentialService
import Foundation
import VaultCrypto
import VaultStore

/// The token caches of the KIS clients people run, each written in the format and under the
/// name its reader expects (docs/INTEGRATIONS.md has each reader's side).
public enum TokenFileFormat: String, CaseIterable, Sendable {
    /// KIS's sample `kis_auth.py`: `KIS<YYYYMMDD>` with `token:` and `valid-date:`.
    case kisSample = "kis-sample"
    /// PyKis 2.x `keep_token` directory: `token_<domain>_<id>_<sha1>.json`, tokenP's answer.
    case pykis
    /// kis-trader: `<real|paper>-<sha256(appkey)[:16]>.json` with `access_token`, `expires_at`.
    case kisTrader = "kis-trader"
    /// mojito2: `token.dat`, a pickled dict with the token, its end and the app credentials.
    case mojito2
    /// korea-investment-stock 0.19: `token.key` (its FileTokenStorage), the same pickled dict.
    case koreaInvestmentStock = "korea-investment-stock"
    /// `ACCOUNT.env`: shell assignments.
    case env
    /// `ACCOUNT.token.json`.
    case json

    /// How long before the written end the reader itself stops using a token: PyKis and
    /// kis-trader both ask for a new one with less than 10 minutes left.
    public var readerMargin: TimeInterval {
        switch self {
        case .pykis, .kisTrader: 600
        default: 0
        }
    }

    /// Whether the file is named after, or holds, the app credentials.
    public var needsApp: Bool { [.pykis, .kisTrader, .mojito2, .koreaInvestmentStock].contains(self) }

    /// Whether the file holds the appsecret in clear (mojito2 and korea-investment-stock
    /// compare it with their own).
    public var holdsAppsecret: Bool { self == .mojito2 || self == .koreaInvestmentStock }

    /// Where the reader looks when the user has not moved it.
    public func defaultDirectory(_ environment: [String: String]) -> String {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        switch self {
        case .kisSample: return home + "/KIS/config"
        case .pykis: return home + "/.pykis/cache"
        case .kisTrader:
            let cache = environment["XDG_CACHE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.cache"
            return cache + "/kis-trader/tokens"
        case .koreaInvestmentStock: return home + "/.cache/kis"
        case .mojito2, .env, .json: return "."
        }
    }
}

/// Building one token file: its name and bytes, nothing written (the caller writes it
/// atomically where it belongs). Bad input is a `bad_request` ``ServiceError`` naming the
/// account and what to do.
public enum TokenFiles {
    /// What a token file is made of.
    public struct Input: Sendable {
        public var account: String
        public var token: String
        /// The token's real end.
        public var expiresAt: Date
        /// How long before `expiresAt` the file says the token ends (`--min-ttl`).
        public var margin: TimeInterval
        public var now: Date
        /// The machine's zone (the sample compares in local time).
        public var zone: TimeZone
        /// The app credentials, for the formats that name their file after them or keep them.
        public var app: AppCredentials?

        public init(account: String, token: String, expiresAt: Date, margin: TimeInterval, now: Date, zone: TimeZone = .current, app: AppCredentials? = nil) {
            self.account = account
            self.token = token
            self.expiresAt = expiresAt
            self.margin = margin
            self.now = now
            self.zone = zone
            self.app = app
        }
    }

    /// The file for `format`: its name in the directory and its bytes.
    public static func file(format: TokenFileFormat, _ input: Input) throws(ServiceError) -> (name: String, contents: Data) {
        // Every reader that checks an end is told the margin earlier than KIS's.
        let validUntil = input.expiresAt.addingTimeInterval(-input.margin)
        switch format {
        case .kisSample:
            // kis_auth.py reads KIS<today's date>, and keeps the token while `valid-date` is
            // later than the machine's local time as text: so the date is written in the
            // machine's zone (KIS's own string is Korea time).
            let text = "token: \(input.token)\nvalid-date: \(formatted(validUntil, "yyyy-MM-dd HH:mm:ss", input.zone))\n"
            return ("KIS" + formatted(input.now, "yyyyMMdd", input.zone), Data(text.utf8))
        case .pykis:
            // PyKis keeps tokenP's answer as it came (its reader needs all four fields, the
            // end in Korea time) under a name hashed from its own KisKey: the HTS id, the
            // appkey and the appsecret.
            let app = try required(input)
            let id = try pykisID(app, account: input.account)
            var hashed = Array("pykis\(id)".utf8) + app.appkey.copyBytes() + app.appsecret.copyBytes() + Array("token".utf8)
            defer { for i in hashed.indices { hashed[i] = 0 } }
            let domain = app.environment == .real ? "real" : "virtual"
            let name = "token_\(domain)_\(id)_\(Digest.sha1Hex(hashed)).json"
            return (name, try json(["access_token": input.token, "token_type": "Bearer",
                                    "access_token_token_expired": CredentialRules.koreaTime(validUntil),
                                    "expires_in": max(0, Int(validUntil.timeIntervalSince(input.now)))]))
        case .kisTrader:
            let app = try required(input)
            let environment = app.environment == .real ? "real" : "paper"
            let name = "\(environment)-\(Digest.sha256Hex(app.appkey.copyBytes()).prefix(16)).json"
            return (name, try json(["access_token": input.token, "expires_at": Int(validUntil.timeIntervalSince1970)]))
        case .mojito2, .koreaInvestmentStock:
            // Both keep tokenP's answer with `timestamp` (the end, epoch seconds) and the
            // appkey and appsecret they compare with their own before using the token.
            let app = try required(input)
            let contents = Pickle.dictionary([
                ("access_token", .text(input.token)), ("token_type", .text("Bearer")),
                ("expires_in", .integer(max(0, Int(validUntil.timeIntervalSince(input.now))))),
                ("access_token_token_expired", .text(CredentialRules.koreaTime(validUntil))),
                ("timestamp", .integer(Int(validUntil.timeIntervalSince1970))),
                ("api_key", .text(app.appkey.utf8String())), ("api_secret", .text(app.appsecret.utf8String())),
            ])
            return (format == .mojito2 ? "token.dat" : "token.key", contents)
        case .env:
            let text = "KIS_ACCESS_TOKEN=\(input.token)\nKIS_ACCESS_TOKEN_EXPIRES_AT=\(Int(input.expiresAt.timeIntervalSince1970))\n"
                + "KIS_ACCESS_TOKEN_EXPIRES_KST='\(CredentialRules.koreaTime(input.expiresAt))'\n"
            return ("\(input.account).env", Data(text.utf8))
        case .json:
            return ("\(input.account).token.json",
                    try json(["access_token": input.token, "expires_at": Timestamp.string(input.expiresAt),
                              "access_token_token_expired": CredentialRules.koreaTime(input.expiresAt)]))
        }
    }

    /// The HTS id PyKis names its token file after (its `id=`).
    public static func pykisID(_ app: AppCredentials, account: String) throws(ServiceError) -> String {
        guard let id = app.htsID?.utf8String(), !id.isEmpty else {
            throw ServiceError(.badRequest, "account '\(account)' has no HTS id, and PyKis names its token file after it: "
                + "set it with 'kisvault account edit \(account) --hts-id ID' (the id you give PyKis)")
        }
        return id
    }

    private static func required(_ input: Input) throws(ServiceError) -> AppCredentials {
        guard let app = input.app else { throw ServiceError(.badRequest, "account '\(input.account)': this format needs the app credentials") }
        return app
    }

    private static func formatted(_ date: Date, _ format: String, _ zone: TimeZone) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = format
        return formatter.string(from: date)
    }

    /// One JSON object, keys sorted, ending in a newline.
    private static func json(_ object: [String: Any]) throws(ServiceError) -> Data {
        do {
            return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8)
        } catch {
            throw ServiceError(.vaultError, "cannot encode the token file: \(error.localizedDescription)")
        }
    }
}
