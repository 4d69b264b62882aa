import Foundation
import VaultCrypto

/// Which KIS host an account belongs to. A real appkey does not work on the mock host.
public enum AccountEnvironment: String, Sendable, Codable, CaseIterable {
    /// 실전: the real trading host.
    case real
    /// 모의: the paper-trading host.
    case mock

    /// Parses `real` / `mock` (and the Korean-sample aliases `prod` / `vps` / `paper`).
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "real", "prod": self = .real
        case "mock", "paper", "vps": self = .mock
        default: return nil
        }
    }
}

/// The plaintext metadata of an account: all `account list` needs, no passphrase needed.
public struct AccountSummary: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var environment: AccountEnvironment
    public var tags: [String]
    public var createdAt: String
    public var updatedAt: String
    public var secretsUpdatedAt: String
}

/// An account's secrets, opened into guarded memory.
public struct AccountSecrets: Sendable {
    public var appkey: SecureBytes
    public var appsecret: SecureBytes
    public var accountNumber: SecureBytes?
    public var htsID: SecureBytes?

    public init(appkey: SecureBytes, appsecret: SecureBytes, accountNumber: SecureBytes? = nil, htsID: SecureBytes? = nil) {
        self.appkey = appkey
        self.appsecret = appsecret
        self.accountNumber = accountNumber
        self.htsID = htsID
    }
}

/// An account to add or import.
public struct NewAccount: Sendable {
    public var name: String
    public var environment: AccountEnvironment
    public var secrets: AccountSecrets
    public var tags: [String]

    public init(name: String, environment: AccountEnvironment, secrets: AccountSecrets, tags: [String] = []) {
        self.name = name
        self.environment = environment
        self.secrets = secrets
        self.tags = tags
    }
}

/// The account fields `account edit` can change; nil leaves a field as it is.
public struct AccountChanges: Sendable {
    public var environment: AccountEnvironment?
    /// `.some(nil)` clears the account number.
    public var accountNumber: SecureBytes??
    public var htsID: SecureBytes??
    public var addTags: [String] = []
    public var removeTags: [String] = []
    /// New appkey and appsecret (`--rotate-secret`).
    public var credentials: (appkey: SecureBytes, appsecret: SecureBytes)?

    public init() {}

    /// Sets the account number as typed (`12345678-01`, `1234567801`; normalized as
    /// ``AccountValidation/normalizedAccountNumber(_:)`` does), or clears it with nil.
    public mutating func setAccountNumber(_ typed: String?) {
        accountNumber = .some(typed.map { SecureBytes(utf8: AccountValidation.normalizedAccountNumber($0)) })
    }
}

extension AccountSecrets {
    /// An account's secrets with its account number and HTS id as typed (the number
    /// normalized as ``AccountValidation/normalizedAccountNumber(_:)`` does).
    public init(appkey: SecureBytes, appsecret: SecureBytes, typedAccountNumber: String?, htsID: String?) {
        self.init(appkey: appkey, appsecret: appsecret,
                  accountNumber: typedAccountNumber.map { SecureBytes(utf8: AccountValidation.normalizedAccountNumber($0)) },
                  htsID: htsID.map(SecureBytes.init(utf8:)))
    }
}

/// Validation of KIS credential shapes (KIS-API.md: appkeys are 36 characters,
/// appsecrets 180; a pasted secret with a stray character is a known cause of EGW00105).
public enum AccountValidation {
    public static let appkeyLength = 36
    public static let appsecretLength = 180

    /// Checks the appkey and appsecret of account `name`.
    /// - Throws: ``VaultError/invalidAccount(name:reason:)`` naming the field, its length,
    ///   and the likely cause.
    public static func check(name: String, appkey: SecureBytes, appsecret: SecureBytes) throws(VaultError) {
        try check(name: name, field: "appkey", value: appkey, length: appkeyLength)
        try check(name: name, field: "appsecret", value: appsecret, length: appsecretLength)
    }

    /// Checks an appkey alone (what a prompt can check before asking for the appsecret).
    public static func checkAppkey(name: String, _ value: SecureBytes) throws(VaultError) {
        try check(name: name, field: "appkey", value: value, length: appkeyLength)
    }

    /// Checks an appsecret alone.
    public static func checkAppsecret(name: String, _ value: SecureBytes) throws(VaultError) {
        try check(name: name, field: "appsecret", value: value, length: appsecretLength)
    }

    static func check(name: String, field: String, value: SecureBytes, length: Int) throws(VaultError) {
        let (hasEdgeSpace, hasBadByte): (Bool, Bool) = value.withUnsafeBytes { bytes in
            let isSpace: (UInt8) -> Bool = { $0 == 32 || $0 == 9 || $0 == 10 || $0 == 13 }
            let edge = bytes.first.map(isSpace) == true || bytes.last.map(isSpace) == true
            let bad = bytes.contains { $0 < 33 || $0 > 126 }
            return (edge, bad)
        }
        if value.count != length {
            var reason = "the \(field) is \(value.count) characters long, but KIS \(field)s are \(length)"
            if hasEdgeSpace { reason += "; it starts or ends with whitespace or a newline, usually left over from copying: remove it" }
            else if value.count == 0 { reason = "the \(field) is empty" }
            else { reason += "; check that it was copied whole" }
            throw .invalidAccount(name: name, reason: reason)
        }
        if hasBadByte {
            throw .invalidAccount(name: name, reason: "the \(field) contains whitespace or a non-ASCII character; KIS \(field)s are printable ASCII")
        }
    }

    /// Most tags one account may carry.
    public static let maxTags = 32
    /// Longest HTS id (KIS's are a few letters and digits).
    public static let maxHTSIDLength = 32

    /// Checks an HTS id: 1 to ``maxHTSIDLength`` printable ASCII characters, no spaces.
    public static func checkHTSID(name: String, _ value: SecureBytes) throws(VaultError) {
        let printable = value.withUnsafeBytes { $0.allSatisfy { (33...126).contains($0) } }
        guard (1...maxHTSIDLength).contains(value.count), printable else {
            throw .invalidAccount(name: name, reason: "the HTS id must be 1 to \(maxHTSIDLength) printable ASCII characters without spaces (it is \(value.count) bytes)")
        }
    }

    /// Checks the number of distinct tags an account would carry.
    public static func checkTagCount(name: String, _ count: Int) throws(VaultError) {
        guard count <= maxTags else {
            throw .invalidAccount(name: name, reason: "\(count) tags; an account carries at most \(maxTags)")
        }
    }

    /// An account number in its one stored form, `12345678-01`: 10 digits gain the dash,
    /// anything else is returned as given (and refused by ``checkAccountNumber(name:_:)``).
    public static func normalizedAccountNumber(_ value: String) -> String {
        guard value.utf8.count == 10, value.utf8.allSatisfy({ (48...57).contains($0) }) else { return value }
        return String(value.prefix(8)) + "-" + String(value.suffix(2))
    }

    /// The two parts KIS's order and balance calls take, `CANO` (8 digits) and
    /// `ACNT_PRDT_CD` (2 digits), of an account number with 10 digits; nil otherwise.
    public static func splitAccountNumber(_ value: String?) -> (cano: String, productCode: String)? {
        guard let digits = value?.filter(\.isNumber), digits.count == 10 else { return nil }
        return (String(digits.prefix(8)), String(digits.suffix(2)))
    }

    /// Checks an account number: `12345678-01` or 10 digits.
    public static func checkAccountNumber(name: String, _ value: String) throws(VaultError) {
        let digits = value.filter(\.isNumber)
        let shapeOK = value.utf8.allSatisfy { (48...57).contains($0) || $0 == 45 }
        guard shapeOK, digits.count == 10, value.count == 10 || (value.count == 11 && Array(value)[8] == "-") else {
            throw .invalidAccount(name: name, reason: "the account number must be 8 digits, '-', 2 digits (12345678-01)")
        }
    }
}
