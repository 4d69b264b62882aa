import AccountFile
import Foundation

/// An account the mock accepts: only these appkey/appsecret pairs are valid credentials.
public struct MockAccount: Sendable, Codable, Equatable {
    public var name: String
    /// `real` or `mock`.
    public var environment: String
    public var appkey: String
    public var appsecret: String
    public var accountNo: String?
    public var htsId: String?
    public var tags: [String]

    public init(name: String, environment: String, appkey: String, appsecret: String, accountNo: String? = nil, htsId: String? = nil, tags: [String] = []) {
        self.name = name
        self.environment = environment
        self.appkey = appkey
        self.appsecret = appsecret
        self.accountNo = accountNo
        self.htsId = htsId
        self.tags = tags
    }
}

/// Errors reading or writing account files.
public struct MockAccountFileError: Error, CustomStringConvertible {
    public var description: String
}

public enum MockAccounts {
    /// `count` accounts with valid-looking credentials: 36-character appkeys starting
    /// `PS`, 180-character appsecrets, 8-digit account numbers. Deterministic for a seed.
    public static func generate(count: Int, environment: String, prefix: String = "acct", seed: UInt64 = 1) -> [MockAccount] {
        var rng = SeededGenerator(seed: seed ^ (environment == "real" ? 0x5245_414C : 0x4D4F_434B))
        let alnum = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let b64 = alnum + ["+", "/"]
        func random(_ n: Int, from set: [Character]) -> String {
            String((0..<n).map { _ in set[Int(rng.next() % UInt64(set.count))] })
        }
        let width = max(4, String(count).count)
        return (0..<count).map { i in
            let number = String(format: "%0\(width)d", i + 1)
            return MockAccount(
                name: "\(prefix)-\(number)", environment: environment,
                appkey: "PS" + random(34, from: alnum), appsecret: random(176, from: b64) + "AAA=",
                accountNo: String(format: "%08d-01", 50_000_000 + Int(rng.next() % 49_999_999)),
                htsId: nil, tags: [environment == "real" ? "live" : "paper", "generated"])
        }
    }

    /// The accounts as CSV with the `kisvault account import` header.
    public static func csv(_ accounts: [MockAccount]) -> String {
        var out = accountFileColumns.joined(separator: ",") + "\n"
        for a in accounts {
            out += [a.name, a.environment, a.appkey, a.appsecret, a.accountNo ?? "", a.htsId ?? "", a.tags.joined(separator: ";")]
                .map(CSV.escape).joined(separator: ",") + "\n"
        }
        return out
    }

    /// The accounts as a JSON array in the import format.
    public static func json(_ accounts: [MockAccount]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(accounts), as: UTF8.self) + "\n"
    }

    /// Reads a CSV or JSON account file (the format is taken from the first byte).
    public static func load(path: String) throws -> [MockAccount] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MockAccountFileError(description: "cannot read accounts file \(path)")
        }
        if data.first(where: { ![9, 10, 13, 32].contains($0) }) == UInt8(ascii: "[") {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            do {
                return try decoder.decode([MockAccount].self, from: data)
            } catch {
                throw MockAccountFileError(description: "\(path): not a JSON array of accounts (\(error))")
            }
        }
        let records = CSV.parse(String(decoding: data, as: UTF8.self))
        guard let header = records.first?.fields else { return [] }
        var accounts: [MockAccount] = []
        for record in records.dropFirst() where record.fields != [""] {
            let row = Dictionary(zip(header, record.fields), uniquingKeysWith: { a, _ in a })
            guard let name = row["name"], let env = row["environment"], let key = row["appkey"], let secret = row["appsecret"] else {
                throw MockAccountFileError(description: "\(path) line \(record.line): needs name, environment, appkey, appsecret")
            }
            accounts.append(MockAccount(name: name, environment: env, appkey: key, appsecret: secret,
                                        accountNo: row["account_no"].flatMap { $0.isEmpty ? nil : $0 },
                                        htsId: row["hts_id"].flatMap { $0.isEmpty ? nil : $0 },
                                        tags: AccountRecord.splitTags(row["tags"] ?? "")))
        }
        return accounts
    }
}

/// SplitMix64: small, fast, and reproducible for a seed, which is all fault injection and
/// account generation need (nothing here is a secret).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
