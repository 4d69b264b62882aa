import Foundation
import GRDB
import Testing

/// Every bad input of the vault issue: the exit code, the one-line message, and a vault
/// left exactly as it was.
@Suite struct CLIBadInputTests {
    func sandboxWithAccount() async throws -> CLISandbox {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1, extra: ["--tag", "prod"]).status == 0)
        return box
    }

    @Test func wrongPassphrase() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let show = try await box.runAsync(["account", "show", "alpha"], env: ["KISVAULT_PASSPHRASE": "not it"])
        #expect(show.status == 3)
        #expect(show.stderr.hasPrefix("kisvault: wrong passphrase"))
        #expect(show.stdout.isEmpty)
        let remove = try await box.runAsync(["account", "remove", "alpha", "--yes"], env: ["KISVAULT_PASSPHRASE": "nope"])
        #expect(remove.status == 3)
        let file = box.write("pw", "also wrong\n")
        #expect(try await box.runAsync(["account", "rename", "alpha", "b", "--passphrase-file", file]).status == 3)
        #expect(try box.dump() == before)
    }

    @Test func vaultMissing() async throws {
        let box = CLISandbox()
        let r = try await box.runAsync(["account", "list"])
        #expect(r.status == 4)
        #expect(r.stderr.contains("kisvault init"))
        #expect(!FileManager.default.fileExists(atPath: box.vault))
    }

    @Test func notAVault() async throws {
        let box = CLISandbox()
        try FileManager.default.createDirectory(atPath: box.dir + "/vault", withIntermediateDirectories: true)
        for (contents, reason) in [("", "empty"), ("my_app: PSxxxx\n", "short"), (String(repeating: "text\n", count: 200), "SQLite")] {
            _ = box.write("vault/vault.db", contents)
            let r = try await box.runAsync(["account", "list"])
            #expect(r.status == 1, "\(reason)")
            #expect(r.stderr.contains("is not a kisvault vault"), "\(reason): \(r.stderr)")
            #expect(try String(contentsOfFile: box.vault, encoding: .utf8) == contents)
        }
        try FileManager.default.removeItem(atPath: box.vault)
        let other = try DatabaseQueue(path: box.vault)
        try await other.write { try $0.execute(sql: "CREATE TABLE notes(t); INSERT INTO notes VALUES ('x')") }
        try other.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: box.vault))
        let r = try await box.runAsync(["account", "add", "x", "--env", "mock"], stdin: "a\nb\n")
        #expect(r.status == 1)
        #expect(r.stderr.contains("not one kisvault made"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: box.vault)) == before)
    }

    @Test func newerFormat() async throws {
        let box = try await sandboxWithAccount()
        let db = try DatabaseQueue(path: box.vault)
        try await db.write { try $0.execute(sql: "PRAGMA user_version = 42") }
        try db.close()
        let before = try box.dump()
        let r = try await box.runAsync(["account", "list"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("format 42") && r.stderr.contains("upgrade kisvault"))
        #expect(try box.dump() == before)
    }

    @Test func truncatedAndBitFlippedVault() async throws {
        let box = try await sandboxWithAccount()
        for i in 2..<40 { try await box.addAccount("acct\(i)", seed: i) }
        let original = try Data(contentsOf: URL(fileURLWithPath: box.vault))
        try original.prefix(original.count / 2).write(to: URL(fileURLWithPath: box.vault))
        let truncated = try await box.runAsync(["doctor"])
        #expect(truncated.status == 1)
        #expect(truncated.stderr.contains("damaged") || truncated.stdout.contains("fail"))

        // Flip one bit inside every sealed appsecret blob's page region: the byte at the
        // middle of the file lies in the accounts table's pages.
        var flipped = original
        let range = flipped.range(of: Data("acct20".utf8))!
        flipped[range.lowerBound - 40] ^= 0x10
        try flipped.write(to: URL(fileURLWithPath: box.vault))
        let doctor = try await box.runAsync(["doctor"])
        #expect(doctor.status == 1, "\(doctor.stdout)\(doctor.stderr)")
    }

    @Test func sealedFieldMovedToAnotherRow() async throws {
        let box = try await sandboxWithAccount()
        try await box.addAccount("beta", seed: 2)
        let db = try DatabaseQueue(path: box.vault)
        try await db.write { try $0.execute(sql: "UPDATE accounts SET appkey = (SELECT appkey FROM accounts WHERE name = 'alpha') WHERE name = 'beta'") }
        try db.close()
        let before = try box.dump()
        let show = try await box.runAsync(["account", "show", "beta"])
        #expect(show.status == 1)
        #expect(show.stderr.contains("the appkey of account 'beta' failed to authenticate"))
        let doctor = try await box.runAsync(["doctor"])
        #expect(doctor.status == 1)
        #expect(doctor.stdout.contains("beta (appkey)"))
        #expect(!doctor.stdout.contains("alpha ("))
        #expect(try box.dump() == before)
    }

    @Test func editedOrDeletedAuditRow() async throws {
        let box = try await sandboxWithAccount()
        try await box.addAccount("beta", seed: 2)
        #expect(try await box.runAsync(["audit", "verify"]).status == 0)
        let db = try DatabaseQueue(path: box.vault)
        try await db.write { try $0.execute(sql: "UPDATE audit SET actor = 'mallory' WHERE seq = 2") }
        let edited = try await box.runAsync(["audit", "verify"])
        #expect(edited.status == 1)
        #expect(edited.stdout.contains("row 2"))
        #expect(edited.stderr.contains("tampered"))
        try await db.write { try $0.execute(sql: "UPDATE audit SET actor = (SELECT actor FROM audit WHERE seq = 1) WHERE seq = 2") }
        #expect(try await box.runAsync(["audit", "verify"]).status == 0)
        try await db.write { try $0.execute(sql: "DELETE FROM audit WHERE seq = 2") }
        try db.close()
        let deleted = try await box.runAsync(["audit", "verify", "--format", "json"])
        #expect(deleted.status == 1)
        #expect(deleted.stdout.contains("\"intact\" : false"))
    }

    @Test func duplicateNameAndDuplicateAppkey() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let name = try await box.addAccount("alpha", seed: 9)
        #expect(name.status == 2)
        #expect(name.stderr.contains("an account named 'alpha' already exists"))
        let key = try await box.addAccount("beta", seed: 1)
        #expect(key.status == 2)
        #expect(key.stderr.contains("already in the vault as account 'alpha'"))
        #expect(try box.dump() == before)
    }

    @Test func badCredentialLengths() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let (k, s) = CLISandbox.credentials(5)
        let trailing = try await box.runAsync(["account", "add", "beta", "--env", "mock"], stdin: "\(k) \n\(s)\n")
        #expect(trailing.status == 2)
        #expect(trailing.stderr.contains("account 'beta'") && trailing.stderr.contains("37 characters") && trailing.stderr.contains("whitespace"))
        let short = try await box.runAsync(["account", "add", "beta", "--env", "mock"], stdin: "\(k)\n\(s.dropLast())\n")
        #expect(short.status == 2)
        #expect(short.stderr.contains("appsecret is 179 characters long, but KIS appsecrets are 180"))
        let oneLine = try await box.runAsync(["account", "add", "beta", "--env", "mock"], stdin: "\(k)\n")
        #expect(oneLine.status == 2)
        #expect(oneLine.stderr.contains("two lines"))
        #expect(!trailing.stderr.contains(k) && !short.stderr.contains(s.dropLast()))
        #expect(try box.dump() == before)
    }

    @Test func unknownEnvironment() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let r = try await box.addAccount("beta", seed: 2, env: "paper-trading")
        #expect(r.status == 2)
        #expect(r.stderr.contains("--env"))
        #expect(try box.dump() == before)
    }

    @Test func malformedImportRows() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let (k2, s2) = CLISandbox.credentials(2), (k3, s3) = CLISandbox.credentials(3)
        let csv = box.write("in.csv", """
            name,environment,appkey,appsecret,account_no,hts_id,tags
            good,mock,\(k2),\(s2),,,
            badenv,paper-x,\(k3),\(s3),,,
            short,mock,\(k3.dropLast()),\(s3),,,
            "unterminated,mock,\(k3),\(s3),,,
            """)
        let r = try await box.runAsync(["account", "import", csv])
        #expect(r.status == 2)
        #expect(r.stderr.contains("line 3 (account 'badenv'): unknown environment"))
        #expect(r.stderr.contains("line 4 (account 'short')"))
        #expect(r.stderr.contains("line 5"))
        #expect(!r.stderr.contains(s3))

        let json = box.write("in.json", "[{\"name\": \"good\", \"environment\": \"mock\", \"appkey\": \"\(k2)\", \"appsecret\": \"\(s2)\"}, {\"name\": \"x\"}, 7, {\"name\": \"alpha\", \"environment\": \"real\", \"appkey\": \"\(k3)\", \"appsecret\": \"\(s3)\"}]")
        let j = try await box.runAsync(["account", "import", json])
        #expect(j.status == 2)
        #expect(j.stderr.contains("item 2 (account 'x'): the environment is missing"))
        #expect(j.stderr.contains("item 3: not a JSON object"))
        #expect(j.stderr.contains("item 4 (account 'alpha'): an account of this name is already in the vault"))

        let truncated = box.write("t.json", "[{\"name\": \"good\", \"environ")
        let t = try await box.runAsync(["account", "import", truncated])
        #expect(t.status == 2 && t.stderr.contains("not valid JSON"))

        let yaml = box.write("kis_devlp.yaml", "my_app: \"앱키\"\nmy_sec: \"앱시크릿\"\nmy_acct_stock: \"12345678\"\nmy_prod: \"01\"\n")
        let y = try await box.runAsync(["account", "import", yaml])
        #expect(y.status == 2)
        #expect(y.stderr.contains("kis-real"))
        let notYAML = box.write("bad.yaml", "my_app: [unclosed\n  - x: {")
        #expect(try await box.runAsync(["account", "import", notYAML]).status == 2)
        #expect(try box.dump() == before)
    }

    @Test func passphraseMismatchAtInit() async throws {
        let box = CLISandbox()
        // `script` gives the child a terminal, so init asks twice with echo off.
        let r = try await box.runAsync(["-q", "-e", "-c", "\(CLISandbox.binaryDirectory)/kisvault init --kdf insecure-test", "/dev/null"],
                            stdin: "first one\nsecond one\n", env: ["KISVAULT_PASSPHRASE": nil], tool: "", wrapper: ["/usr/bin/script"])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect((r.stdout + r.stderr).contains("do not match"))
        #expect(!FileManager.default.fileExists(atPath: box.vault))
        let empty = try await box.runAsync(["init"], env: ["KISVAULT_PASSPHRASE": ""])
        #expect(empty.status == 2 && empty.stderr.contains("empty"))
        let none = try await box.runAsync(["init"], env: ["KISVAULT_PASSPHRASE": nil], wrapper: ["/usr/bin/setsid", "-w"])
        #expect(none.status == 3 && none.stderr.contains("--passphrase-file"))
        #expect(!FileManager.default.fileExists(atPath: box.vault))
    }

    @Test func removingTheLastKeyslot() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let r = try await box.runAsync(["keyslot", "remove", "default"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("last"))
        #expect(try box.dump() == before)
    }

    @Test func readOnlyVault() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        // Root ignores file modes, so run as nobody against a vault nobody owns read-only.
        let nobody: [String] = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        let vaultDir = box.dir + "/vault"
        for path in [box.dir, box.dir + "/home"] { chmod(path, 0o755) }
        chown(vaultDir, 65534, 65534); chown(box.vault, 65534, 65534)
        chmod(box.vault, 0o400); chmod(vaultDir, 0o500)
        defer { chmod(vaultDir, 0o700); chmod(box.vault, 0o600); chown(vaultDir, 0, 0); chown(box.vault, 0, 0) }
        let list = try await box.runAsync(["account", "list"], wrapper: nobody)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("alpha"))
        let (k, s) = CLISandbox.credentials(7)
        let add = try await box.runAsync(["account", "add", "beta", "--env", "mock"], stdin: "\(k)\n\(s)\n", wrapper: nobody)
        #expect(add.status == 1)
        #expect(add.stderr.contains("cannot be written"), "\(add.stderr)")
        chmod(vaultDir, 0o700); chmod(box.vault, 0o600); chown(vaultDir, 0, 0); chown(box.vault, 0, 0)
        #expect(try box.dump() == before)
    }

    @Test func vaultHeldByAnotherWriter() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        var config = Configuration()
        config.allowsUnsafeTransactions = true
        let holder = try DatabaseQueue(path: box.vault, configuration: config)
        try await holder.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }
        let r = try await box.runAsync(["account", "add", "beta", "--env", "mock"], stdin: "x\ny\n", env: ["KISVAULT_BUSY_TIMEOUT": "0.3"])
        let busy = try await box.runAsync(["account", "rename", "alpha", "alpha2"], env: ["KISVAULT_BUSY_TIMEOUT": "0.3"])
        try await holder.writeWithoutTransaction { try $0.execute(sql: "ROLLBACK") }
        try holder.close()
        #expect(r.status == 1 && busy.status == 1)
        #expect(busy.stderr.contains("locked by another process"))
        #expect(try box.dump() == before)
    }
}
