import CredentialService
import Foundation
import GRDB
import KISMock
import KisvaultAgent
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The hardening issue: each defect found by attacking kisvault as a hostile user would,
/// one test per class, through the built binary. Each asserts the exit code, what reached
/// stdout and stderr, and that nothing was lost or half-written.
@Suite struct CLIHostileInputTests {
    static let escape = "\u{1b}"

    func sandboxWithAccount() async throws -> CLISandbox {
        let box = CLISandbox()
        try await box.initVault()
        let added = try await box.addAccount("alpha", seed: 1)
        #expect(added.status == 0, "\(added.stderr)")
        return box
    }

    /// Runs `sh -c SCRIPT kisvault ARGS`, so the script can close or redirect descriptors
    /// before it execs the binary as "$0".
    func shell(_ box: CLISandbox, _ script: String, _ arguments: [String], env: [String: String?] = [:]) async throws -> CLIResult {
        try await box.runAsync(arguments, env: env, wrapper: ["/bin/sh", "-c", script])
    }

    func auditActions(_ box: CLISandbox) async throws -> [String] {
        let r = try await box.runAsync(["audit", "list", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
        return rows.compactMap { $0["action"] as? String }
    }

    // 1. Plain HTTP is allowed by address, never by a name that looks like one.
    @Test func plainHTTPOnlyToLoopbackAddresses() async throws {
        let box = try await sandboxWithAccount()
        for url in ["http://127.0.0.1.evil.test:8080", "http://127.evil.test", "http://127.1:9", "http://0x7f.0.0.1:9"] {
            let r = try await box.runAsync(["approval", "get", "alpha"], env: ["KISVAULT_KIS_REAL_URL": url, "KISVAULT_KIS_MOCK_URL": url])
            #expect(r.status == 2, "\(url): \(r.stderr)")
            #expect(r.stderr.contains("refusing plain http://"), "\(url): \(r.stderr)")
        }
        // Credentials in a URL are refused and never printed.
        let withUser = try await box.runAsync(["approval", "get", "alpha"], env: ["KISVAULT_KIS_MOCK_URL": "https://alice:hunter2secret@example.test"])
        #expect(withUser.status == 2 && withUser.stderr.contains("user name or password"))
        #expect(!withUser.stderr.contains("hunter2secret") && !withUser.stderr.contains("alice"))
        let bad = try await box.runAsync(["approval", "get", "alpha"], env: ["KISVAULT_KIS_MOCK_URL": "not a url at all:pw@x"])
        #expect(bad.status == 2 && !bad.stderr.contains("pw@"))
        // Which literals count as loopback is KISEndpointsTests' (no network needed).
        // The same class for the team vault: a PostgreSQL host named like an address is a
        // name, so sslmode=disable is refused for it and the default is verify-full.
        for host in ["127.0.0.1.evil.test", "127.evil.test", "127.1"] {
            let plain = try await box.runAsync(["status", "--vault", "postgres://kv@\(host):5432/team?sslmode=disable"])
            #expect(plain.status == 2 && plain.stderr.contains("sslmode=disable to \(host)"), "\(host): \(plain.stderr)")
        }
        let literal = try await box.runAsync(["status", "--vault", "postgres://kv@127.0.0.2:9/team?sslmode=disable"])
        #expect(literal.status != 2 && !literal.stderr.contains("sslmode=disable to"), "a literal loopback address may go in clear: \(literal.stderr)")
    }

    // 2. init never builds a vault over another vault's leftovers; doctor sees a foreign log.
    @Test func staleWriteAheadLogBesideTheVault() async throws {
        let (box, _, _) = try await CLIAgentTests.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        // A write while the agent holds the vault: the -wal now holds frames.
        #expect(try await box.addAccount("held", seed: 77).status == 0)
        try FileManager.default.removeItem(atPath: box.vault)
        let refused = try await box.runAsync(["init", "--kdf", "insecure-test"])
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("vault.db-wal") && refused.stderr.contains("earlier vault"))
        #expect(!FileManager.default.fileExists(atPath: box.vault))
        // The state an older kisvault produced: a new vault file joined by the old log.
        let other = box.dir + "/other.db"
        #expect(try await box.runAsync(["init", "--kdf", "insecure-test", "--vault", other]).status == 0)
        try FileManager.default.copyItem(atPath: other, toPath: box.vault)
        let doctor = try await box.runAsync(["doctor", "--skip-unlock"])
        #expect(doctor.status == 1, "\(doctor.stdout)")
        #expect(doctor.stdout.contains("belongs to another vault"))
        try await CLIAgentTests.stop(box)
    }

    // 3. A destination that is not a regular file is never replaced.
    @Test func exportNeverReplacesANonRegularFile() async throws {
        let box = try await sandboxWithAccount()
        let fifo = box.dir + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let link = box.dir + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/proc/self/fd/1")
        let directory = box.dir + "/adir"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        var before = stat()
        #expect(stat("/dev/null", &before) == 0)
        for target in ["/dev/null", fifo, link, directory] {
            let r = try await box.runAsync(["account", "export", "--plaintext", "--output", target])
            #expect(r.status == 2, "\(target): \(r.stderr)")
            #expect(r.stderr.contains("refusing to write") && r.stderr.contains("'-' for standard output"), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        var after = stat()
        #expect(stat("/dev/null", &after) == 0 && (after.st_mode & S_IFMT) == S_IFCHR && after.st_rdev == before.st_rdev)
        var info = stat()
        #expect(lstat(fifo, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO)
        #expect(lstat(link, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK)
        #expect(try await auditActions(box).contains("account.export") == false)
        // The same class elsewhere: an agent socket path that names a file never deletes it.
        try FileManager.default.createDirectory(atPath: box.dir + "/private", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let notASocket = box.write("private/notasocket", "keep me\n")
        let agent = try await box.runAsync(["agent", "start", "--foreground", "--socket", notASocket], timeout: 20)
        #expect(agent.status == 1 && agent.stderr.contains("not a socket"), "\(agent.stderr)")
        #expect(try String(contentsOfFile: notASocket, encoding: .utf8) == "keep me\n")
        // '-' is standard output.
        let dash = try await box.runAsync(["account", "export", "--output", "-"])
        #expect(dash.status == 0 && dash.stdout.contains("\"alpha\""))
    }

    // 4. No trap reaches a user; an audit row only for what happened.
    @Test func shortOutputNamesAndAuditAfterTheFact() async throws {
        let box = try await sandboxWithAccount()
        let work = box.dir + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        for name in ["a", "b.json"] {
            let r = try await box.runAsync(["account", "export", "--plaintext", "--output", name], cwd: work)
            #expect(r.status == 0, "\(name): \(r.stderr)")
            #expect(!r.stderr.contains("crashed") && FileManager.default.fileExists(atPath: work + "/" + name))
            let mode = try FileManager.default.attributesOfItem(atPath: work + "/" + name)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
        #expect(try await auditActions(box).filter { $0 == "account.export" }.count == 2)
        let missing = try await box.runAsync(["account", "export", "--plaintext", "--output", box.dir + "/no/such/dir/x.json"])
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
        #expect(try await auditActions(box).filter { $0 == "account.export" }.count == 2)
        // A vault path of one character works too (the same path splitting).
        let tiny = try await box.runAsync(["init", "--kdf", "insecure-test", "--vault", "v"], cwd: work)
        #expect(tiny.status == 0, "\(tiny.stderr)")
    }

    // 5. Every write to stdout is checked; a closed stdout is never some other descriptor.
    @Test func stdoutWriteFailuresAreErrors() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 1)
        let name = accounts[0].name
        let full = #"exec "$0" "$@" >/dev/full"#
        for arguments in [["approval", "get", name], ["account", "export", "--plaintext"], ["account", "list"],
                          ["audit", "list"], ["approval", "status"], ["keyslot", "list"], ["--help"]] {
            let r = try await shell(box, full, arguments)
            #expect(r.status == 1, "\(arguments): \(r.stderr)")
            #expect(r.stderr.contains("cannot write to standard output"), "\(arguments): \(r.stderr)")
        }
        let before = try box.dump()
        let closed = #"exec "$0" "$@" >&-"#
        for arguments in [["token", "get", name], ["account", "export", "--plaintext"], ["account", "list"]] {
            let r = try await shell(box, closed, arguments)
            #expect(r.status == 1, "\(arguments): \(r.stderr)")
            #expect(r.stderr.contains("standard output is closed"), "\(arguments): \(r.stderr)")
        }
        // The token was issued and stored (one request), and the vault is intact: nothing
        // was written into a descriptor that happened to be number 1.
        #expect(mock.requests("/oauth2/tokenP") == 1)
        #expect(try box.dump() != before)
        #expect(try await box.runAsync(["doctor"]).status == 0)
        // A reader that went away (`| head`) is not a failure: quiet, exit 141, as a process
        // killed by SIGPIPE. The pipe's read end is closed before kisvault starts.
        let gone = #"import os, subprocess, sys; r, w = os.pipe(); os.close(r); p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE); sys.stderr.buffer.write(p.stderr); sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)"#
        for arguments in [["account", "list"], ["approval", "get", name], ["audit", "list"]] {
            let r = try await box.runAsync(arguments, wrapper: ["/usr/bin/python3", "-c", gone])
            #expect(r.status == 141 && r.stderr.isEmpty, "\(arguments): \(r.status) \(r.stderr)")
        }
    }

    // 6. A YAML alias bomb is refused at once.
    @Test func yamlAliasBombIsRefused() async throws {
        let box = try await sandboxWithAccount()
        var lines = [#"a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]"#]
        for i in 1..<10 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ",") + "]") }
        let (k, s) = CLISandbox.credentials(5)
        lines += ["my_app: \(k)", "my_sec: \(s)"]
        let before = try box.dump()
        let bomb = box.write("kis_devlp.yaml", lines.joined(separator: "\n") + "\n")
        let r = try await box.runAsync(["account", "import", bomb], timeout: 20)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("anchors and aliases"))
        // An alias in a value kisvault reads is refused the same way.
        let aliased = box.write("alias.yaml", "x: &k \(k)\nmy_app: *k\nmy_sec: \(s)\n")
        #expect(try await box.runAsync(["account", "import", aliased]).status == 2)
        #expect(try box.dump() == before)
        // A plain kis_devlp.yaml still imports, `my_prod: 01` kept as written.
        let plain = box.write("plain.yaml", "my_app: \(k)\nmy_sec: \(s)\nmy_acct_stock: 12345678\nmy_prod: 01\nmy_htsid: hts1\nprod: https://x\n")
        let ok = try await box.runAsync(["account", "import", plain, "--name", "team"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let shown = try await box.runAsync(["account", "show", "team-real", "--reveal", "--format", "json"])
        #expect(shown.stdout.contains("\"12345678-01\""), "\(shown.stdout)")
    }

    // 7. Every input has a size cap.
    @Test func inputSizeCaps() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let longHTS = String(repeating: "h", count: 100_000)
        let hts = try await box.runAsync(["account", "edit", "alpha", "--hts-id", longHTS])
        #expect(hts.status == 2 && hts.stderr.contains("HTS id"), "\(hts.stderr)")
        let (k, s) = CLISandbox.credentials(9)
        let addHTS = try await box.runAsync(["account", "add", "beta", "--env", "mock", "--hts-id", longHTS], stdin: "\(k)\n\(s)\n")
        #expect(addHTS.status == 2 && addHTS.stderr.contains("HTS id"))
        let manyTags = (0..<40).map { "t\($0)" }.joined(separator: ";")
        let csv = box.write("tags.csv", "name,environment,appkey,appsecret,tags\nbeta,mock,\(k),\(s),\(manyTags)\n")
        let tags = try await box.runAsync(["account", "import", csv])
        #expect(tags.status == 2 && tags.stderr.contains("at most 32"), "\(tags.stderr)")
        // 40 MiB on standard input: refused after reading the cap, not all of it.
        let big = box.dir + "/big.csv"
        #expect(FileManager.default.createFile(atPath: big, contents: Data(count: 40 * 1024 * 1024)))
        let stdin = try await box.runAsync(["account", "import", "-"], stdinFile: big)
        #expect(stdin.status == 2 && stdin.stderr.contains("larger than 32 MiB"), "\(stdin.stderr)")
        let file = try await box.runAsync(["account", "import", big])
        #expect(file.status == 2 && file.stderr.contains("larger than 32 MiB"))
        #expect(try box.dump() == before)
    }

    // 8. Control characters from outside never reach the terminal raw.
    @Test func terminalEscapesAreNeutralised() async throws {
        let box = try await sandboxWithAccount()
        let (k, s) = CLISandbox.credentials(3)
        let csv = box.write("evil.csv", "name,environment,appkey,appsecret\nev\u{1b}]0;PWNED\u{07}il,mock,\(k),\(s)\n")
        let r = try await box.runAsync(["account", "import", csv])
        #expect(r.status == 2)
        #expect(!r.stderr.contains(Self.escape) && !r.stderr.contains("\u{07}") && r.stderr.contains("\\e]0;PWNED"), "\(r.stderr)")
        // U+202E (right-to-left override) would print the rest of a line backwards: escaped
        // in an import's refusal, in a table cell of a name written past kisvault, and
        // doctor names the name that breaks the rules.
        let rtl = box.write("rtl.csv", "name,environment,appkey,appsecret\nev\u{202e}il,mock,\(k),\(s)\n")
        let refusal = try await box.runAsync(["account", "import", rtl])
        #expect(refusal.status == 2 && !refusal.stderr.contains("\u{202e}") && refusal.stderr.contains("\\u{202e}"), "\(refusal.stderr)")
        try await box.tamper { try $0.execute(sql: "UPDATE accounts SET name = 'al\u{202e}pha' WHERE name = 'alpha'") }
        let listed = try await box.runAsync(["account", "list"])
        #expect(!listed.stdout.contains("\u{202e}") && listed.stdout.contains("al\\u{202e}pha"), "\(listed.stdout)")
        let doctor = try await box.runAsync(["doctor", "--skip-unlock"])
        #expect(doctor.status == 1 && doctor.stdout.contains("breaking the name rules") && !doctor.stdout.contains("\u{202e}"), "\(doctor.stdout)")
        try await box.tamper { try $0.execute(sql: "UPDATE accounts SET name = 'alpha' WHERE name <> 'alpha'") }
        // A hostile server: an approval key with escapes and a newline is refused, not
        // stored, not printed; an error text with escapes is kept only cleaned.
        let (hostile, mock, accounts) = try await CLICredentialTests.setUp(count: 2) {
            $0.failRate = 1
            $0.faults = [.hostileKey]
        }
        _ = mock
        let get = try await hostile.runAsync(["approval", "get", accounts[0].name])
        #expect(get.status == 6, "\(get.stderr)")
        #expect(get.stdout.isEmpty && !get.stderr.contains(Self.escape) && get.stderr.contains("not in KIS's shape"))
        let token = try await hostile.runAsync(["token", "get", accounts[0].name])
        #expect(token.status == 6 && token.stdout.isEmpty && !token.stderr.contains(Self.escape))
        let (rejecting, _, rejected) = try await CLICredentialTests.setUp(count: 1) {
            $0.failRate = 1
            $0.faults = [.hostileError]
        }
        let refused = try await rejecting.runAsync(["approval", "get", rejected[0].name])
        #expect(refused.status == 5 && !refused.stderr.contains(Self.escape) && !refused.stderr.contains("\u{9b}"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("\nkisvault: all good"))
        for format in ["text", "json"] {
            let status = try await rejecting.runAsync(["approval", "status", "--format", format])
            #expect(status.status == 0 && status.stdout.contains("EGW00103"))
            #expect(!status.stdout.contains(Self.escape) && !status.stdout.contains("\u{9b}") && !status.stdout.contains("\u{07}"), "\(status.stdout)")
        }
    }

    // 9. The agent stops writing into a deleted log; the CLI names the missing log.
    @Test func agentLocksWhenItsWriteAheadLogIsDeleted() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let first = try await CLIAgentTests.get(box, "/v1/accounts/\(accounts[0].name)/approval-key")
        #expect(first.status == 200)
        try FileManager.default.removeItem(atPath: box.vault + "-wal")
        let cli = try await box.runAsync(["account", "list"])
        #expect(cli.status == 1 && cli.stderr.contains("write-ahead log") && cli.stderr.contains("-wal is missing"), "\(cli.stderr)")
        let status = try await CLIAgentTests.get(box, "/v1/status")
        #expect(status.json?["locked"] as? Bool == true, "\(String(decoding: status.body, as: UTF8.self))")
        #expect((status.json?["lock_reason"] as? String)?.contains("write-ahead log") == true)
        let next = try await CLIAgentTests.get(box, "/v1/accounts/\(accounts[1].name)/approval-key")
        #expect(next.status == 423 || next.status == 409)
        #expect(mock.requests("/oauth2/Approval") == 1)
        try await CLIAgentTests.stop(box)
    }

    // 10. doctor checks where the vault really is, and a writable directory is a failure.
    @Test func doctorFollowsSymlinksAndFailsWritableDirectories() async throws {
        let box = try await sandboxWithAccount()
        let link = box.dir + "/link.db"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: box.vault)
        let vaultDirectory = box.dir + "/vault"
        #expect(chmod(vaultDirectory, 0o777) == 0)
        let r = try await box.runAsync(["doctor", "--skip-unlock", "--vault", link, "--format", "json"])
        #expect(r.status == 1, "\(r.stdout)")
        let checks = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: String]] ?? []
        let directory = checks.first { $0["check"] == "directory mode" }
        #expect(directory?["status"] == "fail" && directory?["detail"]?.contains(vaultDirectory) == true, "\(checks)")
        #expect(directory?["detail"]?.contains("plant a -wal") == true)
        #expect(checks.contains { $0["check"] == "symlink" })
        #expect(chmod(vaultDirectory, 0o700) == 0)
        let fixed = try await box.runAsync(["doctor", "--skip-unlock", "--vault", link])
        #expect(fixed.status == 0, "\(fixed.stdout)")
    }

    // 11. A full disk in the middle of a bulk run: a report of what was stored and lost.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root (CI runs as root)"))
    func diskFullMidBulkRun() async throws {
        let box = CLISandbox()
        let mount = try box.mountTmpfs(size: "4m")
        defer { box.unmount(mount) }
        let accounts = MockAccounts.generate(count: 300, environment: "real", seed: 31)
        var configuration = MockConfiguration()
        configuration.accounts = accounts
        let mock = try await KISMockServer.start(configuration)
        box.environment["KISVAULT_KIS_BASE_URL"] = mock.baseURL
        box.environment["KISVAULT_PATH"] = mount + "/vault.db"
        try await box.initVault()
        let imported = try await box.runAsync(["account", "import", box.write("accounts.csv", MockAccounts.csv(accounts))])
        #expect(imported.status == 0, "\(imported.stderr)")
        // Fill the disk but for a little room: a few batches fit, the rest do not.
        let filler = mount + "/filler"
        var fs = statvfs()
        #expect(statvfs(mount, &fs) == 0)
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        #expect(FileManager.default.createFile(atPath: filler, contents: Data(count: max(0, free - 96 * 1024))))
        let run = try await box.runAsync(["approval", "issue", "--all", "--format", "json", "--quiet"])
        #expect(run.status == 7, "\(run.stderr)")
        #expect(run.stderr.contains("could not be written part-way"), "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let results = report?["results"] as? [[String: Any]] ?? []
        #expect(results.count == 300)
        let issued = results.filter { $0["status"] as? String == "issued" }.count
        let notStored = results.filter { $0["error_code"] as? String == "not-stored" }.count
        let notAttempted = results.filter { $0["error_code"] as? String == "not-attempted" }.count
        // How many batches fit before the disk fills varies with the WAL's growth (none, in
        // some runs): what must hold is that every account is accounted for, and that what
        // the report calls issued is exactly what is stored (below).
        #expect(notStored + notAttempted > 0 && issued + notStored + notAttempted == 300, "\(issued) \(notStored) \(notAttempted)")
        // What the report calls issued is really stored; a rerun with room finishes the rest.
        try FileManager.default.removeItem(atPath: filler)
        let status = try await box.runAsync(["approval", "status", "--format", "json"])
        let states = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(states.filter { $0["state"] as? String == "fresh" }.count == issued)
        let rerun = try await box.runAsync(["approval", "issue", "--all", "--quiet"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        let sent = mock.requests("/oauth2/Approval")
        #expect(sent == 300 + notStored + (results.count - issued - notStored - notAttempted), "\(sent)")
    }

    // 12. Thousands of options are refused before argument-parser's quadratic parsing.
    @Test func manyOptionsAreRefusedQuickly() async throws {
        let box = try await sandboxWithAccount()
        let tags = (0..<5000).flatMap { ["--tag", "t\($0)"] }
        let r = try await box.runAsync(["account", "add", "beta", "--env", "mock"] + tags, timeout: 20)
        #expect(r.status == 2 && r.stderr.contains("at most 32 tags"), "\(r.stderr)")
        let names = (0..<3000).map { "n\($0)" }
        let bulk = try await box.runAsync(["approval", "issue"] + names + ["--dry-run"], timeout: 20)
        #expect(bulk.status == 2 && bulk.stderr.contains("--all or --tag"), "\(bulk.stderr)")
    }

    // 13. Unknown and repeated columns and fields are refused by name.
    @Test func unknownAndRepeatedColumnsAreRefused() async throws {
        let box = try await sandboxWithAccount()
        let before = try box.dump()
        let (k, s) = CLISandbox.credentials(4)
        let typo = box.write("typo.csv", "name,environment,appkey,appsecret,acount_no\nbeta,mock,\(k),\(s),12345678-01\n")
        let r1 = try await box.runAsync(["account", "import", typo])
        #expect(r1.status == 2 && r1.stderr.contains("unknown column 'acount_no'"), "\(r1.stderr)")
        let twice = box.write("twice.csv", "name,environment,appkey,appsecret,name\nbeta,mock,\(k),\(s),gamma\n")
        let r2 = try await box.runAsync(["account", "import", twice])
        #expect(r2.status == 2 && r2.stderr.contains("column 'name' appears more than once"))
        let json = box.write("typo.json", #"[{"name": "beta", "environment": "mock", "appkey": "\#(k)", "appsecret": "\#(s)", "acount_no": "x"}]"#)
        let r3 = try await box.runAsync(["account", "import", json])
        #expect(r3.status == 2 && r3.stderr.contains("unknown field 'acount_no'"), "\(r3.stderr)")
        let yaml = box.write("twice.yaml", "my_app: \(k)\nmy_sec: \(s)\nmy_app: \(k)\n")
        #expect(try await box.runAsync(["account", "import", yaml]).status == 2)
        #expect(try box.dump() == before)
    }

    // 14. Messages and exit codes as docs/CLI.md says.
    @Test func messagesAndExitCodesMatchTheDocs() async throws {
        let box = try await sandboxWithAccount()
        let closedStdin = try await shell(box, #"exec "$0" "$@" <&-"#, ["account", "add", "beta", "--env", "mock"])
        #expect(closedStdin.status == 2 && closedStdin.stderr.contains("standard input is closed"), "\(closedStdin.stderr)")
        let directory = try await box.runAsync(["account", "show", "alpha", "--passphrase-file", box.dir], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(directory.status == 3 && directory.stderr.contains("is a directory"), "\(directory.stderr)")
        let missing = try await box.runAsync(["account", "show", "alpha", "--passphrase-file", box.dir + "/nope"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(missing.status == 3 && missing.stderr.contains("cannot read passphrase file"))
        let empty = try await shell(box, #"exec "$0" "$@" 5</dev/null"#, ["account", "show", "alpha", "--passphrase-fd", "5"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(empty.status == 3 && empty.stderr.contains("is empty") && !empty.stderr.contains("wrong passphrase"), "\(empty.stderr)")
        let notOpen = try await box.runAsync(["account", "show", "alpha", "--passphrase-fd", "9"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(notOpen.status == 3 && notOpen.stderr.contains("not open"), "\(notOpen.stderr)")
        let deep = box.write("deep.json", String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
        let r = try await box.runAsync(["account", "import", deep])
        #expect(r.status == 2 && r.stderr.contains("nested more than") && !r.stderr.contains("truncated"), "\(r.stderr)")
        let usage = try await box.runAsync(["account", "list", "--bogus"])
        #expect(usage.status == 2 && usage.stderr.hasPrefix("kisvault: "), "\(usage.stderr)")
        let unknown = try await box.runAsync(["acount", "list"])
        #expect(unknown.status == 2 && unknown.stderr.hasPrefix("kisvault: "))
    }

    // The agent: JSON errors for unknown routes, status that checks the vault, and a CLI
    // that never uses an agent aimed at other KIS hosts.
    @Test func agentAnswersAndKISURLs() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let unknown = try await CLIAgentTests.get(box, "/v1/nosuch")
        #expect(unknown.status == 404 && unknown.json?["error"] as? String == "not_found", "\(String(decoding: unknown.body, as: UTF8.self))")
        let status = try await CLIAgentTests.get(box, "/v1/status")
        let urls = status.json?["kis_urls"] as? [String: String]
        #expect(urls?["real"] == mock.baseURL && urls?["mock"] == mock.baseURL)
        // Another mock for this command only: the agent (started for the first) is not used.
        var configuration = MockConfiguration()
        configuration.accounts = MockAccounts.generate(count: 3, environment: "real", seed: 11)
        let second = try await KISMockServer.start(configuration)
        let name = accounts[0].name
        let r = try await box.runAsync(["approval", "get", name, "--verbose"], env: ["KISVAULT_KIS_BASE_URL": second.baseURL])
        #expect(r.status == 0 && r.stderr.contains("other KIS URLs"), "\(r.stderr)")
        let viaSecond = second.requests("/oauth2/Approval")
        let viaFirst = mock.requests("/oauth2/Approval")
        #expect(viaSecond == 1 && viaFirst == 0, "second \(viaSecond), first \(viaFirst): \(r.stderr)")
        // The vault deleted: status says locked at once.
        try FileManager.default.removeItem(atPath: box.vault)
        let after = try await CLIAgentTests.get(box, "/v1/status")
        #expect(after.json?["locked"] as? Bool == true)
        try await CLIAgentTests.stop(box)
    }
}
