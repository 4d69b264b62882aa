import Foundation
import CredentialService
import VaultCrypto
import VaultStore

/// Writing the official sample's `kis_devlp.yaml` for one account or a real+mock pair: the
/// inverse of `account import --format kis-yaml` (`my_app`/`my_sec` real, `paper_app`/
/// `paper_sec` mock, `my_acct_stock`/`my_paper_stock` + `my_prod`, `my_htsid`), with the
/// environments' URLs (`prod`, `vps`, `ops`, `vops`) following `KISVAULT_KIS_*`.
enum KISYAMLExport {
    /// One account's part of the file.
    struct Entry {
        var name: String
        var environment: AccountEnvironment
        var appkey: String, appsecret: String
        var accountNumber: String?, htsID: String?
    }

    static func text(_ accounts: [(AccountSummary, AccountSecrets)]) throws -> String {
        try text(accounts.map { summary, secrets in
            Entry(name: summary.name, environment: summary.environment, appkey: secrets.appkey.utf8String(), appsecret: secrets.appsecret.utf8String(),
                  accountNumber: secrets.accountNumber?.utf8String(), htsID: secrets.htsID?.utf8String())
        })
    }

    static func text(_ accounts: [Entry]) throws -> String {
        let real = accounts.filter { $0.environment == .real }
        let mock = accounts.filter { $0.environment == .mock }
        guard real.count <= 1, mock.count <= 1 else {
            throw CLIError.badInput("kis_devlp.yaml holds one real and one mock account; these are \(accounts.map { "\($0.name) (\($0.environment.rawValue))" }.joined(separator: ", "))")
        }
        let endpoints: KISURLs
        do { endpoints = try KISURLs.fromEnvironment() } catch { throw CLIError.badInput(error.description) }
        func split(_ number: String?) -> (String, String)? {
            guard let digits = number?.filter(\.isNumber), digits.count == 10 else { return nil }
            return (String(digits.prefix(8)), String(digits.suffix(2)))
        }
        let realNumber = split(real.first?.accountNumber), mockNumber = split(mock.first?.accountNumber)
        // One `my_prod` and one `my_htsid` serve both accounts in the sample's file.
        let products = Set([realNumber?.1, mockNumber?.1].compactMap { $0 })
        guard products.count <= 1 else {
            throw CLIError.badInput("the two accounts have different product codes (\(products.sorted().joined(separator: ", "))); kis_devlp.yaml has one my_prod: export them one at a time")
        }
        let htsIDs = Set(accounts.compactMap(\.htsID))
        guard htsIDs.count <= 1 else {
            throw CLIError.badInput("the two accounts have different HTS ids; kis_devlp.yaml has one my_htsid: export them one at a time")
        }
        var lines = ["# kis_devlp.yaml written by kisvault: appkeys and appsecrets in clear text. Keep it 0600, and delete it when the sample no longer needs it."]
        func add(_ key: String, _ value: String?) { lines.append("\(key): \(quoted(value ?? ""))") }
        add("my_app", real.first?.appkey)
        add("my_sec", real.first?.appsecret)
        add("paper_app", mock.first?.appkey)
        add("paper_sec", mock.first?.appsecret)
        add("my_htsid", htsIDs.first)
        add("my_acct_stock", realNumber?.0)
        add("my_acct_future", nil)
        add("my_paper_stock", mockNumber?.0)
        add("my_paper_future", nil)
        add("my_prod", products.first ?? "01")
        add("prod", endpoints.real)
        add("vps", endpoints.mock)
        add("ops", endpoints.realWebSocket)
        add("vops", endpoints.mockWebSocket)
        add("my_agent", "kisvault/\(Kisvault.version)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML double-quoted scalar: what vault fields hold is printable ASCII, but quotes
    /// and backslashes are escaped all the same.
    static func quoted(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
