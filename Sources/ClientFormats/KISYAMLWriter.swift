import AccountFile
import CredentialService
import Foundation
import VaultCrypto
import VaultStore

/// Writing the official sample's `kis_devlp.yaml` for one account or a real+mock pair: the
/// inverse of `account import --format kis-yaml` (`my_app`/`my_sec` real, `paper_app`/
/// `paper_sec` mock, `my_acct_stock`/`my_paper_stock` + `my_prod`, `my_htsid`), with the
/// environments' URLs (`prod`, `vps`, `ops`, `vops`) as given (the caller's `KISVAULT_KIS_*`).
/// The reader is `AccountFileReader.parseKISYAML`; both take the keys from ``KISYAMLKey``.
public enum KISYAMLWriter {
    /// One account's part of the file.
    public struct Entry: Sendable {
        public var name: String
        public var environment: AccountEnvironment
        public var appkey: String, appsecret: String
        public var accountNumber: String?, htsID: String?

        public init(name: String, environment: AccountEnvironment, appkey: String, appsecret: String, accountNumber: String? = nil, htsID: String? = nil) {
            self.name = name
            self.environment = environment
            self.appkey = appkey
            self.appsecret = appsecret
            self.accountNumber = accountNumber
            self.htsID = htsID
        }
    }

    public static func text(_ accounts: [(AccountSummary, AccountSecrets)], urls: KISURLs, agent: String) throws(ServiceError) -> String {
        try text(accounts.map { summary, secrets in
            Entry(name: summary.name, environment: summary.environment, appkey: secrets.appkey.utf8String(), appsecret: secrets.appsecret.utf8String(),
                  accountNumber: secrets.accountNumber?.utf8String(), htsID: secrets.htsID?.utf8String())
        }, urls: urls, agent: agent)
    }

    /// The file for at most one real and one mock account, which must share the product
    /// code and HTS id (the file has one of each).
    public static func text(_ accounts: [Entry], urls endpoints: KISURLs, agent: String) throws(ServiceError) -> String {
        let real = accounts.filter { $0.environment == .real }
        let mock = accounts.filter { $0.environment == .mock }
        guard real.count <= 1, mock.count <= 1 else {
            throw ServiceError(.badRequest, "kis_devlp.yaml holds one real and one mock account; these are \(accounts.map { "\($0.name) (\($0.environment.rawValue))" }.joined(separator: ", "))")
        }
        let realNumber = AccountValidation.splitAccountNumber(real.first?.accountNumber)
        let mockNumber = AccountValidation.splitAccountNumber(mock.first?.accountNumber)
        // One `my_prod` and one `my_htsid` serve both accounts in the sample's file.
        let products = Set([realNumber?.1, mockNumber?.1].compactMap { $0 })
        guard products.count <= 1 else {
            throw ServiceError(.badRequest, "the two accounts have different product codes (\(products.sorted().joined(separator: ", "))); kis_devlp.yaml has one \(KISYAMLKey.product): export them one at a time")
        }
        let htsIDs = Set(accounts.compactMap(\.htsID))
        guard htsIDs.count <= 1 else {
            throw ServiceError(.badRequest, "the two accounts have different HTS ids; kis_devlp.yaml has one \(KISYAMLKey.htsID): export them one at a time")
        }
        var lines = ["# kis_devlp.yaml written by kisvault: appkeys and appsecrets in clear text. Keep it 0600, and delete it when the sample no longer needs it."]
        func add(_ key: String, _ value: String?) { lines.append("\(key): \(quoted(value ?? ""))") }
        add(KISYAMLKey.realAppkey, real.first?.appkey)
        add(KISYAMLKey.realAppsecret, real.first?.appsecret)
        add(KISYAMLKey.mockAppkey, mock.first?.appkey)
        add(KISYAMLKey.mockAppsecret, mock.first?.appsecret)
        add(KISYAMLKey.htsID, htsIDs.first)
        add(KISYAMLKey.realAccount, realNumber?.0)
        add(KISYAMLKey.realFutures, nil)
        add(KISYAMLKey.mockAccount, mockNumber?.0)
        add(KISYAMLKey.mockFutures, nil)
        add(KISYAMLKey.product, products.first ?? KISYAMLKey.defaultProduct)
        add(KISYAMLKey.realURL, endpoints.real)
        add(KISYAMLKey.mockURL, endpoints.mock)
        add(KISYAMLKey.realWebSocketURL, endpoints.realWebSocket)
        add(KISYAMLKey.mockWebSocketURL, endpoints.mockWebSocket)
        add(KISYAMLKey.userAgent, agent)
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML double-quoted scalar: what vault fields hold is printable ASCII, but quotes
    /// and backslashes are escaped all the same.
    static func quoted(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// The home the official sample reads (`exec --kis-sample`): `KIS/config/kis_devlp.yaml`
/// with one account, and today's token cache `KIS/config/KIS<YYYYMMDD>` beside it.
public enum SampleHomeFiles {
    /// Writes both files under `home` (the directory 0700, the files 0600).
    public static func write(into home: String, account: KISYAMLWriter.Entry, token: TokenFiles.Input) throws {
        let config = home + "/KIS/config"
        try AtomicFile.makeTokenDirectory(config)
        try AtomicFile.write(Data(try KISYAMLWriter.text([account]).utf8), to: config + "/kis_devlp.yaml")
        let file = try TokenFiles.file(format: .kisSample, token)
        try AtomicFile.write(file.contents, to: config + "/" + file.name)
    }
}

extension KISYAMLWriter {
    /// The file with the KIS URLs of the environment (`KISVAULT_KIS_*`) and this build as
    /// its user agent.
    public static func text(_ accounts: [(AccountSummary, AccountSecrets)]) throws -> String {
        try text(accounts, urls: try KISURLs.fromEnvironment(), agent: agent)
    }

    public static func text(_ entries: [Entry]) throws -> String {
        try text(entries, urls: try KISURLs.fromEnvironment(), agent: agent)
    }

    private static var agent: String { "kisvault/\(kisvaultVersion)" }
}
