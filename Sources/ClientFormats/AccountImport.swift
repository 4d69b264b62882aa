import AccountFile
import CredentialService
import Foundation
import VaultStore

/// The import/export file formats of `kisvault account import` and `kis-mock generate`.
public enum AccountFileFormat: String, CaseIterable {
    case csv, json
    case kisYAML = "kis-yaml"

    /// Guesses from the file name, then from the first non-blank byte.
    public static func detect(name: String, data: Data) -> AccountFileFormat {
        let lower = name.lowercased()
        if lower.hasSuffix(".json") { return .json }
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return .kisYAML }
        if lower.hasSuffix(".csv") { return .csv }
        let first = data.first { ![9, 10, 13, 32].contains($0) }
        if first == UInt8(ascii: "[") { return .json }
        if let text = String(data: data.prefix(4096), encoding: .utf8), text.contains("my_app:") || text.contains("paper_app:") { return .kisYAML }
        return .csv
    }
}


/// Parses account files into import candidates, collecting every problem with its place.
public struct AccountFileParser {
    public var candidates: [ImportCandidate] = []
    public var problems: [ImportProblem] = []

    public init() {}

    /// One row's raw fields → a candidate, or a problem.
    mutating func add(location: String, fields: [String: String], tags: [String]? = nil) {
        let name = fields["name"]?.trimmingCharacters(in: .whitespaces) ?? ""
        func problem(_ reason: String) {
            problems.append(ImportProblem(location: location, account: name.isEmpty ? nil : name, reason: reason))
        }
        guard !name.isEmpty else { return problem("the name is missing") }
        guard let envText = fields["environment"], !envText.isEmpty else { return problem("the environment is missing (real or mock)") }
        guard let env = AccountEnvironment(parsing: envText.trimmingCharacters(in: .whitespaces)) else {
            return problem("unknown environment '\(envText)': use real or mock")
        }
        guard let appkey = fields["appkey"], !appkey.isEmpty else { return problem("the appkey is missing") }
        guard let appsecret = fields["appsecret"], !appsecret.isEmpty else { return problem("the appsecret is missing") }
        let number = fields["account_no"].flatMap { $0.isEmpty ? nil : AccountValidation.normalizedAccountNumber($0.trimmingCharacters(in: .whitespaces)) }
        let hts = fields["hts_id"].flatMap { $0.isEmpty ? nil : $0 }
        let tagList = tags ?? AccountRecord.splitTags(fields["tags"] ?? "")
        let secrets = AccountSecrets(appkey: SecureBytes(utf8: appkey), appsecret: SecureBytes(utf8: appsecret),
                                     accountNumber: number.map(SecureBytes.init(utf8:)), htsID: hts.map(SecureBytes.init(utf8:)))
        candidates.append(ImportCandidate(location: location, account: NewAccount(name: name, environment: env, secrets: secrets, tags: tagList)))
    }

    /// Reads `data` in `format` and converts every record (`base` names kis-yaml's accounts).
    /// - Throws: ``VaultError/importRejected(source:problems:)`` for a file that is not text.
    public mutating func read(_ data: Data, format: AccountFileFormat, base: String, source: String) throws(VaultError) {
        var reader = AccountFileReader()
        switch format {
        case .json: reader.parseJSON(data)
        case .csv, .kisYAML:
            guard let text = String(data: data, encoding: .utf8) else {
                throw .importRejected(source: source, problems: [ImportProblem(location: source, account: nil, reason: "it is not UTF-8 text")])
            }
            if format == .csv { reader.parseCSV(text) } else { reader.parseKISYAML(text, base: base) }
        }
        problems += reader.problems.map { ImportProblem(location: $0.location, account: $0.account, reason: $0.reason) }
        for record in reader.records { add(location: record.location, fields: record.fields, tags: record.tagList) }
    }
}
