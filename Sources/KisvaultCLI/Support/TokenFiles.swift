import ArgumentParser
import CredentialService
import Foundation
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The token caches of the KIS clients people run, each written in the format and under the
/// name its reader expects (docs/INTEGRATIONS.md has each reader's side).
enum TokenFileFormat: String, ExpressibleByArgument, CaseIterable {
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
    var readerMargin: TimeInterval {
        switch self {
        case .pykis, .kisTrader: 600
        default: 0
        }
    }

    /// Whether the file is named after, or holds, the app credentials.
    var needsApp: Bool { [.pykis, .kisTrader, .mojito2, .koreaInvestmentStock].contains(self) }

    /// Whether the file holds the appsecret in clear (mojito2 and korea-investment-stock
    /// compare it with their own).
    var holdsAppsecret: Bool { self == .mojito2 || self == .koreaInvestmentStock }

    /// Where the reader looks when the user has not moved it.
    func defaultDirectory(_ environment: [String: String]) -> String {
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

/// Building one token file.
enum TokenFiles {
    /// What a token file is made of.
    struct Input {
        var account: String
        var token: String
        /// The token's real end.
        var expiresAt: Date
        /// How long before `expiresAt` the file says the token ends (`--min-ttl`).
        var margin: TimeInterval
        var now: Date
        /// The machine's zone (the sample compares in local time).
        var zone: TimeZone = .current
        /// The app credentials, for the formats that name their file after them or keep them.
        var app: AppCredentials?
    }

    /// The file for `format`: its name in the directory and its bytes.
    static func file(format: TokenFileFormat, _ input: Input) throws(CLIError) -> (name: String, contents: Data) {
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

    /// Creates `directory` and its missing parents 0700.
    /// Makes `directory` (0700) if missing. One that another user owns, or that others (or a
    /// group not one's own) may write without the sticky bit, is refused: they could replace the token file (or
    /// plant one for the client to read) after kisvault wrote it.
    static func makeDirectory(_ directory: String) throws(CLIError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io("cannot create \(directory): \(error.localizedDescription)")
        }
        var info = stat()
        guard stat(directory, &info) == 0 else { throw .io("cannot inspect \(directory): \(String(cString: strerror(errno)))") }
        // Group-writable counts only for a group other than one's own (Debian's user private
        // groups make 0775 directories the norm).
        let othersWrite = info.st_mode & S_IWOTH != 0 || (info.st_mode & S_IWGRP != 0 && info.st_gid != getegid())
        let sticky = info.st_mode & S_ISVTX != 0
        if info.st_uid != geteuid() && info.st_uid != 0 {
            throw .badInput("refusing to write into \(directory): it belongs to uid \(info.st_uid), who could replace the token file; use a directory of your own")
        }
        if othersWrite && !sticky {
            throw .badInput("refusing to write into \(directory): others may write to it (mode \(String(info.st_mode & 0o7777, radix: 8))) and could replace the token file; 'chmod go-w \(directory)' or use another --dir")
        }
    }

    /// The HTS id PyKis names its token file after (its `id=`).
    static func pykisID(_ app: AppCredentials, account: String) throws(CLIError) -> String {
        guard let id = app.htsID?.utf8String(), !id.isEmpty else {
            throw .badInput("account '\(account)' has no HTS id, and PyKis names its token file after it: "
                + "set it with 'kisvault account edit \(account) --hts-id ID' (the id you give PyKis)")
        }
        return id
    }

    private static func required(_ input: Input) throws(CLIError) -> AppCredentials {
        guard let app = input.app else { throw .badInput("account '\(input.account)': this format needs the app credentials") }
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
    private static func json(_ object: [String: Any]) throws(CLIError) -> Data {
        do {
            return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8)
        } catch {
            throw .io("cannot encode the token file: \(error.localizedDescription)")
        }
    }
}

/// The part of Python's pickle format (protocol 2) that a flat dict of text and integers
/// takes, so mojito2's `pickle.load` reads what kisvault writes. Nothing here reads pickles:
/// loading one runs code, and kisvault never does.
enum Pickle {
    enum Value {
        case text(String)
        case integer(Int)
    }

    static func dictionary(_ items: [(String, Value)]) -> Data {
        var out: [UInt8] = [0x80, 0x02, UInt8(ascii: "}"), UInt8(ascii: "(")]
        func text(_ value: String) {
            let bytes = Array(value.utf8)
            out.append(UInt8(ascii: "X"))  // BINUNICODE: 4-byte little-endian length, UTF-8
            out += withUnsafeBytes(of: UInt32(bytes.count).littleEndian, Array.init)
            out += bytes
        }
        for (key, value) in items {
            text(key)
            switch value {
            case .text(let string): text(string)
            case .integer(let number):
                // LONG1: a length byte, then the two's-complement little-endian bytes.
                out += [0x8a, 8] + withUnsafeBytes(of: Int64(number).littleEndian, Array.init)
            }
        }
        out += [UInt8(ascii: "u"), UInt8(ascii: ".")]  // SETITEMS, STOP
        return Data(out)
    }
}
