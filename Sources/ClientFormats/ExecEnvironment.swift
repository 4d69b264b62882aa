import CredentialService
import Foundation

/// The variables `kisvault exec` gives its command, for clients that read their
/// credentials from the environment: the account (`KIS_ENV`, the URLs, the appkey and
/// appsecret, the account fields), and each credential with its expiry.
public enum ExecEnvironment {
    /// `KIS_ENV`, `KIS_BASE_URL`, `KIS_WS_URL`, `KIS_APPKEY`, `KIS_APPSECRET`, and where the
    /// account has them `KIS_ACCOUNT_NO` with its split `KIS_CANO` / `KIS_ACNT_PRDT_CD`,
    /// and `KIS_HTS_ID`.
    public static func account(_ app: AppCredentials, urls: KISURLs) -> [String: String] {
        var out = [
            "KIS_ENV": app.environment.rawValue, "KIS_BASE_URL": urls.rest(app.environment), "KIS_WS_URL": urls.webSocket(app.environment),
            "KIS_APPKEY": app.appkey.utf8String(), "KIS_APPSECRET": app.appsecret.utf8String(),
        ]
        let accountNumber = app.accountNumber?.utf8String()
        out["KIS_ACCOUNT_NO"] = accountNumber
        if let (cano, productCode) = AccountValidation.splitAccountNumber(accountNumber) {
            out["KIS_CANO"] = cano
            out["KIS_ACNT_PRDT_CD"] = productCode
        }
        out["KIS_HTS_ID"] = app.htsID?.utf8String()
        return out
    }

    /// `KIS_APPROVAL_KEY` / `KIS_ACCESS_TOKEN`, its expiry as epoch seconds
    /// (`..._EXPIRES_AT`) and as KIS writes it, Korea time (`..._EXPIRES_KST`).
    public static func credential(_ kind: CredentialKind, value: String, expiresAt: Date) -> [String: String] {
        let name = kind == .approval ? "KIS_APPROVAL_KEY" : "KIS_ACCESS_TOKEN"
        return [name: value, name + "_EXPIRES_AT": String(Int(expiresAt.timeIntervalSince1970)),
                name + "_EXPIRES_KST": CredentialRules.koreaTime(expiresAt)]
    }

    /// The official sample's home (``SampleHomeFiles``) for the account and token these
    /// variables hold; nil when they lack any of it.
    public static func sampleHome(_ env: [String: String], account: String, margin: TimeInterval, now: Date)
        -> (account: KISYAMLWriter.Entry, token: TokenFiles.Input)? {
        guard let environment = env["KIS_ENV"].flatMap(AccountEnvironment.init(rawValue:)), let appkey = env["KIS_APPKEY"],
              let appsecret = env["KIS_APPSECRET"], let token = env["KIS_ACCESS_TOKEN"],
              let expires = env["KIS_ACCESS_TOKEN_EXPIRES_AT"].flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) else {
            return nil
        }
        let entry = KISYAMLWriter.Entry(name: account, environment: environment, appkey: appkey, appsecret: appsecret,
                                        accountNumber: env["KIS_ACCOUNT_NO"], htsID: env["KIS_HTS_ID"])
        return (entry, TokenFiles.Input(account: account, token: token, expiresAt: expires, margin: margin, now: now))
    }
}
