import Foundation
import Yams

/// One row of an account file as written: its place ("line 7", "item 3", "my_app/my_sec"),
/// its fields by column name, and its tags when the format lists them apart.
public struct AccountRecord: Sendable, Equatable {
    public var location: String
    public var fields: [String: String]
    /// Tags given as a list (JSON arrays, kis-yaml's none); nil: split the `tags` field.
    public var tags: [String]?

    public init(location: String, fields: [String: String], tags: [String]? = nil) {
        self.location = location
        self.fields = fields
        self.tags = tags
    }

    /// The record's tags: the list, else the `tags` field split at `;`, `|` or spaces.
    public var tagList: [String] {
        tags ?? AccountRecord.splitTags(fields["tags"] ?? "")
    }

    /// The one rule for a tags field, shared by every reader of account files.
    public static func splitTags(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == ";" || $0 == " " || $0 == "|" }).map(String.init)
    }
}

/// A problem with a row or a whole file: where, which account when known, and why.
public struct AccountFileProblem: Sendable, Equatable {
    public var location: String
    public var account: String?
    public var reason: String

    public init(location: String, account: String?, reason: String) {
        self.location = location
        self.account = account
        self.reason = reason
    }
}

/// Reads the account file formats (`kisvault account import`, `kis-mock`): CSV, JSON and
/// the official sample's kis_devlp.yaml, into records and problems. It never throws and
/// never traps, whatever the bytes (`make fuzz` holds it to that), and every problem names
/// a place and, where it can, an account, never a secret.
public struct AccountFileReader: Sendable {
    public var records: [AccountRecord] = []
    public var problems: [AccountFileProblem] = []

    public init() {}

    /// CSV with a header naming the columns (any order; `name`, `environment`, `appkey`,
    /// `appsecret` required). RFC 4180 quoting; tags separated by `;`, `|` or spaces.
    public mutating func parseCSV(_ text: String) {
        let rows = CSV.parse(text)
        guard let header = rows.first else {
            problems.append(AccountFileProblem(location: "line 1", account: nil, reason: "the file is empty; expected a header: \(accountFileColumns.joined(separator: ","))"))
            return
        }
        let columns = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        // A misspelt column (`acount_no`) would import nothing from it and say nothing; a
        // repeated one would silently take one of the two. Both are refused by name.
        var seen: Set<String> = []
        var headerProblems: [String] = []
        for column in columns {
            if !accountFileColumns.contains(column) {
                headerProblems.append(column.isEmpty ? "an empty column name" : "unknown column '\(column)'")
            } else if !seen.insert(column).inserted {
                headerProblems.append("column '\(column)' appears more than once")
            }
        }
        guard headerProblems.isEmpty else {
            problems.append(AccountFileProblem(location: "line \(header.line)", account: nil,
                                          reason: "\(headerProblems.prefix(10).joined(separator: ", ")); the columns are \(accountFileColumns.joined(separator: ","))"))
            return
        }
        let missing = ["name", "environment", "appkey", "appsecret"].filter { !columns.contains($0) }
        guard missing.isEmpty else {
            problems.append(AccountFileProblem(location: "line \(header.line)", account: nil,
                                          reason: "the header lacks \(missing.joined(separator: ", ")); expected \(accountFileColumns.joined(separator: ","))"))
            return
        }
        for record in rows.dropFirst() {
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            if let error = record.error {
                problems.append(AccountFileProblem(location: "line \(record.line)", account: nil, reason: error))
                continue
            }
            guard record.fields.count == columns.count else {
                // Named by the name column only: with reordered columns the first field
                // could be an appkey, and a problem line must never carry a secret.
                let nameIndex = columns.firstIndex(of: "name")
                let name = nameIndex.flatMap { $0 < record.fields.count ? record.fields[$0] : nil }
                problems.append(AccountFileProblem(location: "line \(record.line)", account: name,
                                              reason: "\(record.fields.count) fields where the header has \(columns.count)"))
                continue
            }
            records.append(AccountRecord(location: "line \(record.line)", fields: Dictionary(zip(columns, record.fields), uniquingKeysWith: { a, _ in a })))
        }
    }

    /// A JSON array of objects with the CSV's column names; `tags` an array or a string.
    public mutating func parseJSON(_ data: Data) {
        if let depth = Self.nestingTooDeep(data) {
            problems.append(AccountFileProblem(location: "the file", account: nil,
                                          reason: "JSON nested more than \(depth) levels deep; an account file is an array of flat objects"))
            return
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) else {
            problems.append(AccountFileProblem(location: "the file", account: nil, reason: "not valid JSON (truncated, or a stray character?)"))
            return
        }
        guard let items = root as? [Any] else {
            problems.append(AccountFileProblem(location: "the file", account: nil, reason: "expected a JSON array of account objects"))
            return
        }
        for (index, item) in items.enumerated() {
            let location = "item \(index + 1)"
            guard let object = item as? [String: Any] else {
                problems.append(AccountFileProblem(location: location, account: nil, reason: "not a JSON object"))
                continue
            }
            var fields: [String: String] = [:]
            var bad: String?
            if let unknown = object.keys.filter({ !accountFileColumns.contains($0) }).sorted().first {
                bad = "unknown field '\(unknown)'; the fields are \(accountFileColumns.joined(separator: ", "))"
            }
            for (key, value) in object where key != "tags" && accountFileColumns.contains(key) {
                switch value {
                case let s as String: fields[key] = s
                case is NSNull: break
                case let n as NSNumber: fields[key] = n.stringValue
                default: bad = "the field '\(key)' is not a string"
                }
            }
            var tags: [String]?
            switch object["tags"] {
            case let list as [Any]: tags = list.compactMap { $0 as? String }; if tags!.count != list.count { bad = "tags must be strings" }
            case let s as String: fields["tags"] = s
            case nil, is NSNull: break
            default: bad = "tags must be an array of strings"
            }
            if let bad {
                problems.append(AccountFileProblem(location: location, account: (object["name"] as? String).flatMap { $0.isEmpty ? nil : $0 }, reason: bad))
                continue
            }
            records.append(AccountRecord(location: location, fields: fields, tags: tags))
        }
    }

    /// The official sample's `kis_devlp.yaml`: `my_app`/`my_sec` become `<base>-real`,
    /// `paper_app`/`paper_sec` become `<base>-mock`, with `my_acct_stock` + `my_prod`
    /// (real) or `my_paper_stock` + `my_prod` (mock) as the account number and `my_htsid`.
    public mutating func parseKISYAML(_ text: String, base: String) {
        // Composed, never loaded: `Yams.load` expands every alias into a copy, so nine
        // levels of `&a [*a, *a, ...]` grow to gigabytes. The composed tree shares aliased
        // nodes, and only the top-level scalars are read; anchors and aliases, which
        // kis_devlp.yaml never uses, are refused outright.
        let map: [String: String]
        do { map = try Self.flatYAMLMapping(text) } catch {
            problems.append(AccountFileProblem(location: "the file", account: nil, reason: error.reason))
            return
        }
        func value(_ key: String) -> String? {
            guard let s = map[key]?.trimmingCharacters(in: .whitespaces) else { return nil }
            return s.isEmpty ? nil : s
        }
        let product = value(KISYAMLKey.product) ?? KISYAMLKey.defaultProduct
        func number(_ key: String) -> String? {
            value(key).map { $0.contains("-") ? $0 : "\($0)-\(product)" }
        }
        var found = false
        if value(KISYAMLKey.realAppkey) != nil || value(KISYAMLKey.realAppsecret) != nil {
            found = true
            records.append(AccountRecord(location: "my_app/my_sec", fields: [
                "name": "\(base)-real", "environment": "real", "appkey": value(KISYAMLKey.realAppkey) ?? "", "appsecret": value(KISYAMLKey.realAppsecret) ?? "",
                "account_no": number(KISYAMLKey.realAccount) ?? "", "hts_id": value(KISYAMLKey.htsID) ?? "",
            ], tags: []))
        }
        if value(KISYAMLKey.mockAppkey) != nil || value(KISYAMLKey.mockAppsecret) != nil {
            found = true
            records.append(AccountRecord(location: "paper_app/paper_sec", fields: [
                "name": "\(base)-mock", "environment": "mock", "appkey": value(KISYAMLKey.mockAppkey) ?? "", "appsecret": value(KISYAMLKey.mockAppsecret) ?? "",
                "account_no": number(KISYAMLKey.mockAccount) ?? "", "hts_id": value(KISYAMLKey.htsID) ?? "",
            ], tags: []))
        }
        if !found {
            problems.append(AccountFileProblem(location: "the file", account: nil, reason: "no my_app/my_sec or paper_app/paper_sec keys: is this kis_devlp.yaml?"))
        }
    }

    /// A problem with a whole file, before any row is read.
    struct FileProblem: Error { var reason: String }

    /// The keys kis_devlp.yaml's values are read from.
    static let kisYAMLKeys: Set<String> = Set(KISYAMLKey.accountKeys)

    /// The top-level `key: scalar` pairs of a YAML mapping. A known key whose value is not
    /// a scalar, a repeated key, and any anchor or alias are refused.
    static func flatYAMLMapping(_ text: String) throws(FileProblem) -> [String: String] {
        let parser: Parser
        let root: Node?
        do {
            parser = try Parser(yaml: text)
            root = try parser.singleRoot()
        } catch {
            throw FileProblem(reason: "not valid YAML (or more than one document)")
        }
        return try withExtendedLifetime(parser) { () throws(FileProblem) -> [String: String] in
            guard let mapping = root?.mapping else {
                throw FileProblem(reason: "expected the kis_devlp.yaml mapping (my_app, my_sec, ...)")
            }
            if root?.anchor != nil { throw FileProblem(reason: "YAML anchors and aliases are not accepted; kis_devlp.yaml has none") }
            var out: [String: String] = [:]
            for (keyNode, valueNode) in mapping {
                guard let key = keyNode.scalar?.string else { throw FileProblem(reason: "a key that is not plain text") }
                if keyNode.anchor != nil || valueNode.anchor != nil {
                    throw FileProblem(reason: "YAML anchors and aliases are not accepted (at '\(key)'); kis_devlp.yaml has none")
                }
                guard out[key] == nil else { throw FileProblem(reason: "the key '\(key)' appears more than once") }
                if let scalar = valueNode.scalar {
                    out[key] = scalar.string
                } else if kisYAMLKeys.contains(key) {
                    throw FileProblem(reason: "the value of '\(key)' is not a single value")
                } else {
                    out[key] = ""
                }
            }
            return out
        }
    }

    /// The limit of ``nestingTooDeep(_:)``.
    static let maxJSONDepth = 32

    /// ``maxJSONDepth`` when `data` nests arrays and objects deeper than that, else nil.
    /// Checked before JSONSerialization, which gives up on deep nesting with an error that
    /// reads like a truncated file.
    static func nestingTooDeep(_ data: Data) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxJSONDepth { return maxJSONDepth }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return nil
    }
}

/// The keys of the official sample's `kis_devlp.yaml`, for its reader here and its writer
/// (ClientFormats' `KISYAMLWriter`): written once.
public enum KISYAMLKey {
    public static let realAppkey = "my_app", realAppsecret = "my_sec"
    public static let mockAppkey = "paper_app", mockAppsecret = "paper_sec"
    public static let htsID = "my_htsid"
    /// The first eight digits of the real and the mock stock account.
    public static let realAccount = "my_acct_stock", mockAccount = "my_paper_stock"
    public static let realFutures = "my_acct_future", mockFutures = "my_paper_future"
    /// The last two digits (the product code), one for both accounts.
    public static let product = "my_prod"
    /// The sample's own default product code.
    public static let defaultProduct = "01"
    /// The environments' URLs: REST real and mock, WebSocket real and mock.
    public static let realURL = "prod", mockURL = "vps", realWebSocketURL = "ops", mockWebSocketURL = "vops"
    public static let userAgent = "my_agent"

    /// The keys an account is read from.
    public static let accountKeys = [realAppkey, realAppsecret, mockAppkey, mockAppsecret, htsID, realAccount, mockAccount, product]
}
