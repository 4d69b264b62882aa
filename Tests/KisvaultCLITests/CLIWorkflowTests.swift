import Foundation
import Testing

/// The vault commands end to end, through the built binary.
@Suite struct CLIWorkflowTests {
    @Test func helpAndVersion() async throws {
        let box = CLISandbox()
        let help = try await box.runAsync(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: kisvault <subcommand>"))
        for sub in ["init", "doctor", "passphrase", "keyslot", "account", "audit"] { #expect(help.stdout.contains("  \(sub) ")) }
        #expect(help.stdout.contains("Exit codes: 0 success"))
        let add = try await box.runAsync(["account", "add", "--help"])
        #expect(add.stdout.contains("--env <env>") && add.stdout.contains("printf"))
        #expect(!add.stdout.contains("insecure-test"))
        #expect(try await box.runAsync(["--version"]).stdout.hasPrefix("0."))
        let bad = try await box.runAsync(["account", "frobnicate"])
        #expect(bad.status == 2)
        #expect(bad.stdout.isEmpty && !bad.stderr.isEmpty)
    }

    @Test func accountLifecycle() async throws {
        let box = CLISandbox()
        try await box.initVault()
        let modes = try FileManager.default.attributesOfItem(atPath: box.vault)[.posixPermissions] as! Int
        #expect(modes == 0o600)
        #expect(try await box.runAsync(["init"]).status == 2)
        let (k, s) = CLISandbox.credentials(1)
        let add = try await box.runAsync(["account", "add", "alpha", "--env", "real", "--account-no", "12345678-01", "--hts-id", "trader1", "--tag", "prod", "--tag", "kr"],
                              stdin: "\(k)\n\(s)\n")
        #expect(add.status == 0)
        #expect(add.stdout.isEmpty && add.stderr == "kisvault: added account 'alpha' (real)\n")
        try await box.addAccount("beta", seed: 2)

        let list = try await box.runAsync(["account", "list", "--format", "json"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(list.status == 0)
        let items = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as! [[String: Any]]
        #expect(items.map { $0["name"] as! String } == ["alpha", "beta"])
        #expect(items[0]["environment"] as? String == "real")
        #expect(items[0]["tags"] as? [String] == ["kr", "prod"])
        #expect(items[0]["created_at"] is String)
        #expect(try await box.runAsync(["account", "list", "--tag", "prod"]).stdout.components(separatedBy: "\n").count == 3)

        let masked = try await box.runAsync(["account", "show", "alpha"])
        #expect(masked.stdout.contains("PS00…kkk") && !masked.stdout.contains(k) && !masked.stdout.contains(s))
        #expect(masked.stdout.contains("••••5678-01") && !masked.stdout.contains("12345678"))
        let revealed = try await box.runAsync(["account", "show", "alpha", "--reveal", "--format", "json"])
        let shown = try JSONSerialization.jsonObject(with: Data(revealed.stdout.utf8)) as! [String: Any]
        #expect(shown["appkey"] as? String == k && shown["appsecret"] as? String == s && shown["account_no"] as? String == "12345678-01")

        let (k9, s9) = CLISandbox.credentials(9)
        #expect(try await box.runAsync(["account", "edit", "alpha", "--rotate-secret", "--add-tag", "x", "--remove-tag", "kr", "--env", "mock"], stdin: "\(k9)\n\(s9)\n").status == 0)
        let edited = try JSONSerialization.jsonObject(with: Data(try await box.runAsync(["account", "show", "alpha", "--reveal", "--format", "json"]).stdout.utf8)) as! [String: Any]
        #expect(edited["appkey"] as? String == k9 && edited["environment"] as? String == "mock" && edited["tags"] as? [String] == ["prod", "x"])
        #expect(try await box.runAsync(["account", "edit", "alpha"]).status == 2)

        #expect(try await box.runAsync(["account", "rename", "alpha", "gamma"]).status == 0)
        #expect(try await box.runAsync(["account", "show", "alpha"]).status == 4)
        #expect(try await box.runAsync(["account", "remove", "gamma"]).status == 2)
        #expect(try await box.runAsync(["account", "remove", "gamma", "--yes"]).status == 0)
        #expect(try await box.runAsync(["account", "list"]).stdout.contains("beta"))

        let audit = try await box.runAsync(["audit", "list", "--account", "gamma", "--format", "json"])
        let actions = (try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as! [[String: Any]]).map { $0["action"] as! String }
        #expect(actions == ["account.rename", "account.remove"])
        #expect(try await box.runAsync(["audit", "list", "--since", "2000-01-01"]).stdout.contains("vault.init"))
        #expect(try await box.runAsync(["audit", "list", "--since", "last tuesday"]).status == 2)
        let verify = try await box.runAsync(["audit", "verify"])
        #expect(verify.status == 0 && verify.stdout.contains("intact"))
        let doctor = try await box.runAsync(["doctor", "--format", "json"])
        #expect(doctor.status == 0, "\(doctor.stdout)")
    }

    @Test func importExportRoundTripAndNoPlaintext() async throws {
        let box = CLISandbox()
        try await box.initVault()
        var csv = "name,environment,appkey,appsecret,account_no,hts_id,tags\n"
        var secrets: [String] = []
        for i in 0..<25 {
            let (k, s) = CLISandbox.credentials(100 + i)
            secrets += [k, s]
            csv += "acct\(i),\(i % 2 == 0 ? "real" : "mock"),\(k),\(s),5000\(String(format: "%04d", i))-01,,team;bulk\n"
        }
        let path = box.write("accounts.csv", csv)
        let imported = try await box.runAsync(["account", "import", path])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("imported 25 accounts"))
        #expect(try await box.runAsync(["account", "import", path]).status == 2)
        #expect(try await box.runAsync(["account", "import", path, "--update"]).stderr.contains("25 updated"))
        let stdinImport = try await box.runAsync(["account", "import", "-", "--format", "csv"], stdin: "name,environment,appkey,appsecret\nviastdin,mock,\(CLISandbox.credentials(7).appkey),\(CLISandbox.credentials(7).appsecret)\n")
        #expect(stdinImport.status == 0, "\(stdinImport.stderr)")

        let (yk, ys) = CLISandbox.credentials(300), (pk, ps) = CLISandbox.credentials(301)
        let yaml = box.write("kis_devlp.yaml", """
            my_app: "\(yk)"
            my_sec: "\(ys)"
            paper_app: "\(pk)"
            paper_sec: "\(ps)"
            my_htsid: "trader"
            my_acct_stock: "12345678"
            my_paper_stock: "87654321"
            my_prod: "01"
            prod: "https://openapi.koreainvestment.com:9443"
            """)
        #expect(try await box.runAsync(["account", "import", yaml, "--name", "team"]).status == 0)
        let mock = try JSONSerialization.jsonObject(with: Data(try await box.runAsync(["account", "show", "team-mock", "--reveal", "--format", "json"]).stdout.utf8)) as! [String: Any]
        #expect(mock["environment"] as? String == "mock" && mock["appkey"] as? String == pk && mock["account_no"] as? String == "87654321-01" && mock["hts_id"] as? String == "trader")
        secrets += [yk, ys, pk, ps]

        // Export without --plaintext: no secret anywhere.
        let safe = try await box.runAsync(["account", "export", "--output", box.dir + "/safe.json"])
        #expect(safe.status == 0 && safe.stderr.contains("secrets omitted"))
        let safeText = try String(contentsOfFile: box.dir + "/safe.json", encoding: .utf8)
        #expect(safeText.contains("acct7"))
        for secret in secrets { #expect(!safeText.contains(secret)) }
        #expect(try FileManager.default.attributesOfItem(atPath: box.dir + "/safe.json")[.posixPermissions] as! Int == 0o600)

        // The vault files themselves hold no secret in clear.
        for suffix in ["", "-wal", "-shm"] {
            guard let data = FileManager.default.contents(atPath: box.vault + suffix) else { continue }
            for secret in secrets { #expect(data.range(of: Data(secret.utf8)) == nil) }
        }

        // Plaintext export re-imports into a fresh vault.
        let out = box.dir + "/plain.json"
        #expect(try await box.runAsync(["account", "export", "--plaintext", "--output", out]).status == 0)
        let fresh = CLISandbox()
        try await fresh.initVault()
        let re = try await fresh.runAsync(["account", "import", out])
        #expect(re.status == 0, "\(re.stderr)")
        let names = { (b: CLISandbox) in try b.run(["account", "list", "--format", "json"]).stdout.components(separatedBy: "\n").filter { $0.contains("\"name\"") } }
        #expect(try names(fresh) == names(box))
        #expect(try await fresh.runAsync(["account", "show", "acct3", "--reveal"]).stdout.contains(CLISandbox.credentials(103).appsecret))
    }

    @Test func keyslotsAndPassphraseChange() async throws {
        let box = CLISandbox()
        try await box.initVault()
        try await box.addAccount("alpha", seed: 1)
        let alicePW = box.write("alice.pw", "alice's passphrase\n")
        #expect(try await box.runAsync(["keyslot", "add", "alice", "--kdf", "insecure-test", "--new-passphrase-file", alicePW]).status == 0)
        let list = try await box.runAsync(["keyslot", "list", "--format", "json"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(list.stdout.contains("\"label\" : \"alice\""))
        #expect(try await box.runAsync(["account", "show", "alpha", "--passphrase-file", alicePW], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        let newPW = box.write("new.pw", "brand new\n")
        #expect(try await box.runAsync(["passphrase", "change", "--new-passphrase-file", newPW]).status == 0)
        #expect(try await box.runAsync(["account", "show", "alpha"]).status == 3)
        #expect(try await box.runAsync(["account", "show", "alpha", "--passphrase-file", newPW], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        // Passphrase from an inherited descriptor: the shell opens it, kisvault reads fd 3.
        let viaFD = try await box.runAsync(["-c", "exec \(CLISandbox.binaryDirectory)/kisvault account show alpha --passphrase-fd 3 3<\(alicePW)"],
                                env: ["KISVAULT_PASSPHRASE": nil], tool: "", wrapper: ["/bin/sh"])
        #expect(viaFD.status == 0, "\(viaFD.stderr)")
        #expect(try await box.runAsync(["keyslot", "remove", "default", "--passphrase-file", alicePW]).status == 0)
        #expect(try await box.runAsync(["keyslot", "remove", "nobody", "--passphrase-file", alicePW]).status == 4)
        #expect(try await box.runAsync(["audit", "verify", "--passphrase-file", alicePW]).status == 0)
    }

    @Test func kisYAMLExportIsTheInverseOfTheImport() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("live", seed: 1, env: "real", extra: ["--account-no", "12345678-01", "--hts-id", "trader1"]).status == 0)
        #expect(try await box.addAccount("paper", seed: 2, env: "mock", extra: ["--account-no", "87654321-01"]).status == 0)
        let yaml = box.dir + "/kis_devlp.yaml"
        let r = try await box.runAsync(["account", "export", "--format", "kis-yaml", "--plaintext", "live", "paper", "--output", yaml],
                                       env: ["KISVAULT_KIS_BASE_URL": "http://127.0.0.1:8080"])
        #expect(r.status == 0, "\(r.stderr)")
        let text = try String(contentsOfFile: yaml, encoding: .utf8)
        let (k1, s1) = CLISandbox.credentials(1)
        #expect(text.contains("my_app: \"\(k1)\"") && text.contains("my_sec: \"\(s1)\""))
        #expect(text.contains("my_acct_stock: \"12345678\"") && text.contains("my_paper_stock: \"87654321\"") && text.contains("my_prod: \"01\""))
        #expect(text.contains("prod: \"http://127.0.0.1:8080\"") && text.contains("ops: \"ws://127.0.0.1:8080\""))
        let mode = try FileManager.default.attributesOfItem(atPath: yaml)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // Imported again, into another vault: the same secrets under the sample's names.
        let other = CLISandbox()
        try await other.initVault()
        #expect(try await other.runAsync(["account", "import", yaml, "--name", "team"]).status == 0)
        func secrets(_ b: CLISandbox, _ name: String) async throws -> [String: String] {
            let shown = try await b.runAsync(["account", "show", name, "--reveal", "--format", "json"])
            let object = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any] ?? [:]
            return object.compactMapValues { $0 as? String }.filter { ["appkey", "appsecret", "account_no", "hts_id", "environment"].contains($0.key) }
        }
        #expect(try await secrets(box, "live") == secrets(other, "team-real"))
        var paper = try await secrets(box, "paper")
        paper["hts_id"] = "trader1"  // one my_htsid serves both accounts of the sample's file
        #expect(try await secrets(other, "team-mock") == paper)
        // Refusals: no --plaintext, two real accounts, an unknown name.
        #expect(try await box.runAsync(["account", "export", "--format", "kis-yaml", "live"]).status == 2)
        #expect(try await box.addAccount("live2", seed: 3, env: "real").status == 0)
        let two = try await box.runAsync(["account", "export", "--format", "kis-yaml", "--plaintext", "live", "live2"])
        #expect(two.status == 2 && two.stderr.contains("one real and one mock"))
        #expect(try await box.runAsync(["account", "export", "--format", "kis-yaml", "--plaintext", "nosuch"]).status == 4)
    }
}
