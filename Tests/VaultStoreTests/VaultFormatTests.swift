import Foundation
import GRDB
import Testing
import VaultCrypto
@testable import VaultStore

@Suite struct VaultFormatTests {
    @Test func createsFilesPrivatelyWithIdentifiers() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/nested/deeper/vault.db"
        let vault = try Vault.create(path: path, passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting, label: "default", actor: "t")
        try vault.addAccount(Fixtures.account("a", seed: 1))
        for p in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: p) {
            let mode = try FileManager.default.attributesOfItem(atPath: p)[.posixPermissions] as! Int
            #expect(mode == 0o600, "\(p) is \(String(mode, radix: 8))")
        }
        for d in [dir.path + "/nested", dir.path + "/nested/deeper"] {
            let mode = try FileManager.default.attributesOfItem(atPath: d)[.posixPermissions] as! Int
            #expect(mode == 0o700)
        }
        let (appID, version, journal) = try DatabaseQueue(path: path).read { db in
            (try Int32.fetchOne(db, sql: "PRAGMA application_id")!, try Int.fetchOne(db, sql: "PRAGMA user_version")!,
             try String.fetchOne(db, sql: "PRAGMA journal_mode")!)
        }
        #expect(appID == 0x4B49_5356)
        #expect(version == Schema.currentVersion)
        #expect(journal == "wal")
        // No temporary file is left beside the vault.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/nested/deeper").allSatisfy { $0.hasPrefix("vault.db") })
    }

    @Test func refusesToOverwrite() throws {
        let dir = TemporaryDirectory()
        _ = try Fixtures.makeVault(in: dir)
        let before = try Fixtures.dump(dir.file("vault.db"))
        #expect(throws: VaultError.vaultExists(path: dir.file("vault.db"))) { try Fixtures.makeVault(in: dir) }
        #expect(try Fixtures.dump(dir.file("vault.db")) == before)
    }

    @Test func unlockRoundTripAndWrongPassphrase() throws {
        let dir = TemporaryDirectory()
        let created = try Fixtures.makeVault(in: dir)
        try created.addAccount(Fixtures.account("alpha", seed: 7, env: .real, tags: ["prod"]))
        created.vault.close()
        let vault = try Vault.open(path: dir.file("vault.db"))
        #expect(throws: VaultError.wrongPassphrase(keyslotsTried: 1)) { try vault.unlock(passphrase: SecureBytes(utf8: "nope")) }
        let unlocked = try vault.unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase))
        let secrets = try unlocked.secrets(of: "alpha")
        #expect(secrets.appkey.utf8String() == Fixtures.credentials(7).appkey)
        #expect(secrets.appsecret.utf8String() == Fixtures.credentials(7).appsecret)
        #expect(try vault.accounts().map(\.name) == ["alpha"])
        #expect(try vault.accounts(tag: "prod").count == 1)
        #expect(try vault.accounts(tag: "other").isEmpty)
    }

    @Test func defaultParametersUnlock() throws {
        // One vault with libsodium's MODERATE parameters (256 MiB), as users get it.
        let dir = TemporaryDirectory()
        let created = try Vault.create(path: dir.file("vault.db"), passphrase: SecureBytes(utf8: "default pw"), kdf: .moderate, label: "default", actor: "t")
        created.vault.close()
        let vault = try Vault.open(path: dir.file("vault.db"))
        #expect(try vault.keyslots().first?.kdf == .moderate)
        _ = try vault.unlock(passphrase: SecureBytes(utf8: "default pw"))
    }

    @Test func rejectsFilesThatAreNotVaults() throws {
        let dir = TemporaryDirectory()
        let empty = dir.file("empty.db")
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(throws: VaultError.notAVault(path: empty, reason: "the file is empty")) { try Vault.open(path: empty) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: empty)).isEmpty)

        let text = dir.file("notes.txt")
        _ = FileManager.default.createFile(atPath: text, contents: Data("appkey: hello\n".utf8))
        #expect(throws: VaultError.notAVault(path: text, reason: "too short to be a database")) { try Vault.open(path: text) }

        let other = dir.file("other.db")
        let queue = try DatabaseQueue(path: other)
        try queue.write { try $0.execute(sql: "CREATE TABLE t(x); INSERT INTO t VALUES (1)") }
        try queue.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: other))
        #expect(throws: VaultError.notAVault(path: other, reason: "a SQLite database, but not one kisvault made")) { try Vault.open(path: other) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: other)) == before)

        #expect(throws: VaultError.vaultNotFound(path: dir.file("missing.db"))) { try Vault.open(path: dir.file("missing.db")) }
    }

    @Test func rejectsNewerFormat() throws {
        let dir = TemporaryDirectory()
        _ = try Fixtures.makeVault(in: dir).vault.close()
        try Fixtures.tamper(dir.file("vault.db"), "PRAGMA user_version = 99")
        #expect(throws: VaultError.newerFormat(path: dir.file("vault.db"), found: 99, supported: Schema.currentVersion)) {
            try Vault.open(path: dir.file("vault.db"))
        }
    }

    @Test func truncatedVaultIsReportedDamaged() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        for i in 0..<50 { try vault.addAccount(Fixtures.account("acct\(i)", seed: i)) }
        vault.vault.close()
        let path = dir.file("vault.db")
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        #expect(throws: VaultError.self) {
            let v = try Vault.open(path: path)
            _ = try v.accounts()
            let checks = v.healthChecks()
            if checks.contains(where: { $0.status == .fail }) { throw VaultError.damaged(path: path, detail: "integrity") }
        }
    }

    @Test func noSecretInPlaintextInAnyFile() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        var secrets: [String] = []
        for i in 0..<20 {
            try vault.addAccount(Fixtures.account("acct\(i)", seed: 1000 + i))
            let (k, s) = Fixtures.credentials(1000 + i)
            secrets += [k, s, "1234\(String(format: "%04d", (1000 + i) % 10000))-01"]
        }
        // While the vault is open the data sits in the -wal file; after close, in the main file.
        func scan() throws {
            for suffix in ["", "-wal", "-shm"] {
                guard let data = FileManager.default.contents(atPath: dir.file("vault.db") + suffix) else { continue }
                for secret in secrets {
                    #expect(data.range(of: Data(secret.utf8)) == nil, "a secret in vault.db\(suffix)")
                    #expect(data.range(of: Data(secret.prefix(20).utf8)) == nil, "part of a secret in vault.db\(suffix)")
                }
            }
        }
        try scan()
        vault.vault.close()
        try scan()
    }
}
