import Foundation
import GRDB
import VaultCrypto
import VaultTestSupport
@testable import VaultStore

/// A temporary directory removed when the value is released.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "kisvault-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

enum Fixtures {
    static let passphrase = "correct horse battery staple"

    /// A valid-looking 36-character appkey and 180-character appsecret, distinct per seed.
    static func credentials(_ seed: Int) -> (appkey: String, appsecret: String) { TestAccounts.credentials(seed) }

    static func account(_ name: String, seed: Int, env: AccountEnvironment = .mock, tags: [String] = []) -> NewAccount {
        let (key, secret) = credentials(seed)
        return NewAccount(name: name, environment: env,
                          secrets: AccountSecrets(appkey: SecureBytes(utf8: key), appsecret: SecureBytes(utf8: secret),
                                                  accountNumber: SecureBytes(utf8: "1234\(String(format: "%04d", seed % 10000))-01")),
                          tags: tags)
    }

    static func makeVault(in dir: TemporaryDirectory, name: String = "vault.db") throws -> UnlockedVault {
        try Vault.create(path: dir.file(name), passphrase: SecureBytes(utf8: passphrase), kdf: .insecureForTesting,
                         label: "default", actor: "tester")
    }

    /// Every row of every table, blobs in hex: equal dumps mean equal vault contents.
    static func dump(_ path: String) throws -> String { try VaultDump.rows(path) }

    /// Runs raw SQL against the vault file, as an attacker with the file would.
    static func tamper(_ path: String, _ sql: String) throws {
        let db = try DatabaseQueue(path: path)
        try db.write { try $0.execute(sql: sql) }
        try db.close()
    }
}
