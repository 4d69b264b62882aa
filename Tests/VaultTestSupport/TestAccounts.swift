import Foundation

/// Account fixtures shared by the store tests and the end-to-end tests.
public enum TestAccounts {
    /// A valid-looking 36-character appkey and 180-character appsecret, distinct per seed.
    public static func credentials(_ seed: Int) -> (appkey: String, appsecret: String) {
        ("PS" + String(format: "%08d", seed) + String(repeating: "k", count: 26),
         String(format: "%08d", seed) + String(repeating: "S", count: 172))
    }
}
