import Foundation
import GRDB
import KISMock
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The key manager through the built binary, against an in-process mock on port 0.
@Suite struct CLICredentialTests {
    /// A sandbox whose vault holds `count` generated accounts, and a mock that knows them.
    static func setUp(count: Int, configure: (inout MockConfiguration) -> Void = { _ in }) async throws -> (CLISandbox, KISMockServer, [MockAccount]) {
        let box = CLISandbox()
        let accounts = MockAccounts.generate(count: count, environment: "real", seed: 11)
        var configuration = MockConfiguration()
        configuration.accounts = accounts
        configure(&configuration)
        let mock = try await KISMockServer.start(configuration)
        box.environment["KISVAULT_KIS_BASE_URL"] = mock.baseURL
        try await box.initVault()
        let file = box.write("accounts.csv", MockAccounts.csv(accounts))
        let r = try await box.runAsync(["account", "import", file])
        precondition(r.status == 0, r.stderr)
        return (box, mock, accounts)
    }


    /// Runs several binaries at once and waits for all.
    static func runConcurrently(_ box: CLISandbox, _ count: Int, _ arguments: [String]) async throws -> [CLIResult] {
        try await withThrowingTaskGroup(of: CLIResult.self) { group in
            for _ in 0..<count {
                group.addTask { try await box.runAsync(arguments) }
            }
            var all: [CLIResult] = []
            for try await r in group { all.append(r) }
            return all
        }
    }

    @Test func getPrintsTheKeyAndCachesIt() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 3)
        let name = accounts[0].name
        let first = try await box.runAsync(["approval", "get", name])
        #expect(first.status == 0 && first.stdout.count == 287 && first.stderr.isEmpty)
        let json = try await box.runAsync(["approval", "get", name, "--format", "json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(object["approval_key"] as? String == first.stdout.trimmingCharacters(in: .newlines))
        #expect(object["from_cache"] as? Bool == true && object["expires_at"] is String && object["issued_at"] is String)
        #expect(mock.requests("/oauth2/Approval") == 1)
        let token = try await box.runAsync(["token", "get", name])
        #expect(token.status == 0 && token.stdout.hasPrefix("eyJ"))
        // The credential is sealed: not in the vault files in clear.
        for suffix in ["", "-wal"] {
            let data = FileManager.default.contents(atPath: box.vault + suffix) ?? Data()
            #expect(data.range(of: Data(token.stdout.prefix(60).utf8)) == nil)
        }
        let status = try await box.runAsync(["token", "status", "--format", "json"], env: ["KISVAULT_PASSPHRASE": nil])
        let rows = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [[String: Any]]
        #expect(rows.map { $0["state"] as! String } == ["fresh", "none", "none"])
        await mock.stop()
    }

    @Test func expiryViaBothClocks() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 1)
        let name = accounts[0].name
        let key = try await box.runAsync(["approval", "get", name]).stdout
        var request = URLRequest(url: URL(string: mock.baseURL + "/__mock/clock/advance?seconds=86500")!)
        request.httpMethod = "POST"
        _ = try await URLSession.shared.data(for: request)
        let status = try await box.runAsync(["approval", "status"], env: ["KISVAULT_CLOCK_OFFSET_SECONDS": "86500"])
        #expect(status.stdout.contains("expired"))
        let again = try await box.runAsync(["approval", "get", name], env: ["KISVAULT_CLOCK_OFFSET_SECONDS": "86500"])
        #expect(again.status == 0 && again.stdout != key)
        #expect(mock.requests("/oauth2/Approval") == 2)
        await mock.stop()
    }

    @Test func tenProcessesOneTokenRequest() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 2) { $0.latencyMilliseconds = 100 }
        let results = try await Self.runConcurrently(box, 10, ["token", "get", accounts[1].name])
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        #expect(Set(results.map(\.stdout)).count == 1)
        #expect(mock.requests("/oauth2/tokenP") == 1)
        await mock.stop()
    }

    @Test func bulkKilledMidRunThenRerun() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 300) { $0.latencyMilliseconds = 40 }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["approval", "issue", "--all", "--concurrency", "4", "--quiet"]
        process.environment = box.environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Kill it once some, but not all, keys are stored.
        var stored = 0
        for _ in 0..<200 {
            try await Task.sleep(for: .milliseconds(25))
            stored = try Self.storedCount(box)
            if stored >= 40 { break }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let afterKill = try Self.storedCount(box)
        #expect(afterKill >= 40 && afterKill < 300, "stored \(afterKill)")
        let rerun = try await box.runAsync(["approval", "issue", "--all", "--concurrency", "16", "--quiet", "--format", "json"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(rerun.stdout.utf8)) as! [String: Any]
        let summary = report["summary"] as! [String: Int]
        #expect(summary["skipped"] == afterKill && summary["issued"] == 300 - afterKill)
        let status = try await box.runAsync(["approval", "status", "--format", "json"])
        #expect((try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [[String: Any]]).allSatisfy { $0["state"] as? String == "fresh" })
        // Nothing issued twice beyond what was in flight when the first run died, judged per
        // account by what the mock answered (no waiting for the killed run's last requests:
        // one that lands late only lowers a count). Stored before the kill: asked once and
        // never again; issued by the rerun: once, or twice if the killed run had asked.
        let results = report["results"] as! [[String: Any]]
        let asked = (mock.stats()["per_account"] as? [String: [String: Int]]) ?? [:]
        var twice = 0
        for result in results {
            let name = result["account"] as! String, times = asked[name]?["/oauth2/Approval"] ?? 0
            if result["status"] as? String == "skipped" {
                #expect(times == 1, "\(name), stored before the kill, was asked for \(times) keys")
            } else {
                #expect(times == 1 || times == 2, "\(name) was asked for \(times) keys")
                if times == 2 { twice += 1 }
            }
        }
        #expect(twice <= 8, "\(twice) accounts asked twice; at most the killed run's requests in flight")
        await mock.stop()
        _ = accounts
    }

    static func storedCount(_ box: CLISandbox) throws -> Int {
        var config = Configuration()
        config.readonly = true
        let db = try DatabaseQueue(path: box.vault, configuration: config)
        defer { try? db.close() }
        return try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM credentials WHERE kind = 'approval'") ?? 0 }
    }

    @Test func twoBulkRunsAtOnce() async throws {
        let (box, mock, _) = try await Self.setUp(count: 120) { $0.latencyMilliseconds = 10 }
        let results = try await Self.runConcurrently(box, 2, ["approval", "issue", "--all", "--concurrency", "8", "--quiet", "--format", "json"])
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        let issued = try results.map { r -> Int in
            let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            return (report["summary"] as! [String: Int])["issued"] ?? 0
        }
        #expect(issued.reduce(0, +) == 120)
        #expect(mock.requests("/oauth2/Approval") == 120)
        await mock.stop()
    }

    @Test func bulkWithFaultsReportsEveryAccount() async throws {
        let (box, mock, _) = try await Self.setUp(count: 60) {
            $0.failRate = 0.6
            $0.faults = [.html, .empty, .serverError]
            $0.seed = 5
        }
        let r = try await box.runAsync(["token", "issue", "--all", "--quiet", "--format", "json"])
        let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let summary = report["summary"] as! [String: Int]
        #expect((summary["issued"] ?? 0) + (summary["failed"] ?? 0) == 60)
        // 60% faults and three attempts each: about 13 of 60 fail (none failing has odds
        // below one in a million), so the partial-failure path is always exercised.
        #expect((summary["failed"] ?? 0) > 0 && (summary["issued"] ?? 0) > 0, "\(summary)")
        #expect(r.status == 7)
        #expect(r.stderr.contains("failed"))
        let failed = (report["results"] as! [[String: Any]]).filter { $0["status"] as? String == "failed" }
        #expect(!failed.isEmpty && failed.allSatisfy { $0["error_code"] is String && $0["message"] is String })
        await mock.stop()
    }

    @Test func execSetsTheEnvironmentAndPassesTheExitStatus() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 1)
        let a = accounts[0]
        let r = try await box.runAsync(["exec", a.name, "--token", "--approval", "--", "/bin/sh", "-c",
                             "env | sort | grep -E '^(KIS_|KISVAULT_PASSPHRASE)' | cut -d= -f1; test \"$KIS_APPKEY\" = \"\(a.appkey)\" && exit 42"])
        #expect(r.status == 42, "\(r.stderr)")
        #expect(r.stdout == """
            KIS_ACCESS_TOKEN
            KIS_ACCESS_TOKEN_EXPIRES_AT
            KIS_ACCESS_TOKEN_EXPIRES_KST
            KIS_ACCOUNT_NO
            KIS_ACNT_PRDT_CD
            KIS_APPKEY
            KIS_APPROVAL_KEY
            KIS_APPROVAL_KEY_EXPIRES_AT
            KIS_APPROVAL_KEY_EXPIRES_KST
            KIS_APPSECRET
            KIS_BASE_URL
            KIS_CANO
            KIS_ENV
            KIS_WS_URL

            """)
        // The account number split as KIS's calls take it; the expiry two ways, agreeing.
        let split = try await box.runAsync(["exec", a.name, "--token", "--", "/bin/sh", "-c",
                                            "echo $KIS_ACCOUNT_NO $KIS_CANO $KIS_ACNT_PRDT_CD; echo $KIS_ACCESS_TOKEN_EXPIRES_AT; echo $KIS_ACCESS_TOKEN_EXPIRES_KST"])
        let lines = split.stdout.split(separator: "\n").map(String.init)
        let digits = (a.accountNo ?? "").filter(\.isNumber)
        #expect(lines.first == "\(a.accountNo ?? "") \(digits.prefix(8)) \(digits.suffix(2))", "\(split.stdout)")
        try #require(lines.count == 3, "\(split.stdout)")
        let epoch = try #require(Double(lines[1]))
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 9 * 3600)
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        #expect(formatter.string(from: Date(timeIntervalSince1970: epoch)) == lines[2])
        #expect(epoch > Date().timeIntervalSince1970 + 23 * 3600)
        // KIS_WS_URL follows the REST URL (a kis-mock's host and port), or its own variable.
        let ws = try await box.runAsync(["exec", a.name, "--", "/bin/sh", "-c", "echo $KIS_BASE_URL $KIS_WS_URL"])
        #expect(ws.stdout == "\(mock.baseURL) \(mock.baseURL.replacingOccurrences(of: "http://", with: "ws://"))\n", "\(ws.stdout) \(ws.stderr)")
        let own = try await box.runAsync(["exec", a.name, "--", "/bin/sh", "-c", "echo $KIS_WS_URL"], env: ["KISVAULT_KIS_WS_URL": "ws://127.0.0.1:4242"])
        #expect(own.stdout == "ws://127.0.0.1:4242\n")
        let plainWS = try await box.runAsync(["exec", a.name, "--", "/bin/true"], env: ["KISVAULT_KIS_REAL_WS_URL": "ws://ops.example.test:21000"])
        #expect(plainWS.status == 2 && plainWS.stderr.contains("refusing plain ws://"), "\(plainWS.stderr)")
        let missing = try await box.runAsync(["exec", a.name, "--", "/no/such/program"])
        #expect(missing.status == 2 && missing.stderr.contains("cannot run"))
        await mock.stop()
    }

    @Test func badInputsAndFaults() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 2)
        let name = accounts[0].name
        let unknown = try await box.runAsync(["approval", "get", "nobody"])
        #expect(unknown.status == 4 && unknown.stderr.contains("no account named 'nobody'"))
        let tooLong = try await box.runAsync(["token", "get", name, "--min-ttl", "25h"])
        #expect(tooLong.status == 2 && tooLong.stderr.contains("24h"))
        let down = try await box.runAsync(["approval", "get", name], env: ["KISVAULT_KIS_BASE_URL": "http://127.0.0.1:9"])
        #expect(down.status == 6 && down.stderr.contains("unavailable") && down.stderr.contains(name))
        let insecure = try await box.runAsync(["approval", "get", name], env: ["KISVAULT_KIS_BASE_URL": "http://example.com"])
        #expect(insecure.status == 2 && insecure.stderr.contains("https"))
        #expect(try await box.runAsync(["approval", "status", "--format", "json"]).stdout.contains("\"none\""))
        let selection = try await box.runAsync(["approval", "issue"])
        #expect(selection.status == 2)
        let noRevoke = try await box.runAsync(["token", "revoke", name])
        #expect(noRevoke.status == 4)
        #expect(try await box.runAsync(["token", "get", name]).status == 0)
        #expect(try await box.runAsync(["token", "revoke", name]).status == 0)
        #expect(mock.requests("/oauth2/revokeP") == 1)
        // A token KIS no longer knows (EGW00121) is "already invalid": forgotten, exit 0.
        // (Past KIS's once-a-minute limit first, on both clocks.)
        mock.advanceClock(seconds: 61)
        let later: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "61"]
        #expect(try await box.runAsync(["token", "get", name, "--no-wait"], env: later).status == 0)
        mock.queueError("EGW00121", path: "/oauth2/revokeP")
        let stale = try await box.runAsync(["token", "revoke", name], env: later)
        #expect(stale.status == 0 && stale.stderr.contains("already invalid") && !stale.stderr.contains("revoked the"), "\(stale.stderr)")
        #expect(try await box.runAsync(["token", "status", "--format", "json"], env: later).stdout.contains("\"none\""))
        #expect(try await box.runAsync(["token", "revoke", name], env: later).status == 4)
        let wait = try await box.runAsync(["token", "rotate", name, "--no-wait", "--quiet"])
        #expect(wait.status == 7 && wait.stdout.contains("wait"))
        // A vault held by another writer: the command waits, then fails cleanly.
        var config = Configuration()
        config.allowsUnsafeTransactions = true
        let holder = try DatabaseQueue(path: box.vault, configuration: config)
        try await holder.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }
        let busy = try await box.runAsync(["approval", "get", accounts[1].name], env: ["KISVAULT_BUSY_TIMEOUT": "0.3"])
        try await holder.writeWithoutTransaction { try $0.execute(sql: "ROLLBACK") }
        try holder.close()
        #expect(busy.status == 1 && busy.stderr.contains("locked by another process"))
        #expect(mock.requests("/oauth2/Approval") == 0)
        await mock.stop()
    }

    @Test func tenReportsOfOneDeadTokenCauseOneIssuance() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 1)
        let a = accounts[0]
        let first = try await box.runAsync(["token", "get", a.name])
        let dead = first.stdout.trimmingCharacters(in: .newlines)
        #expect(first.status == 0 && mock.requests("/oauth2/tokenP") == 1)
        // KIS forgets the token (revoked elsewhere) and a minute passes, on both clocks.
        #expect(mock.revoke(appkey: a.appkey, token: dead))
        mock.advanceClock(seconds: 61)
        let later: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "61"]
        let reports = try await withThrowingTaskGroup(of: CLIResult.self) { group in
            for _ in 0..<10 {
                group.addTask { try await box.runAsync(["token", "invalidate", a.name], stdin: dead + "\n", env: later) }
            }
            var all: [CLIResult] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(reports.allSatisfy { $0.status == 0 }, "\(reports.map(\.stderr))")
        let answers = Set(reports.map { $0.stdout.trimmingCharacters(in: .newlines) })
        #expect(answers.count == 1 && answers.first != dead && answers.first?.hasPrefix("eyJ") == true)
        #expect(mock.requests("/oauth2/tokenP") == 2, "one new issuance for ten reports")
        // A report of a token that is no longer the stored one changes nothing.
        let stale = try await box.runAsync(["token", "invalidate", a.name], stdin: dead + "\n", env: later)
        #expect(stale.status == 0 && stale.stdout.trimmingCharacters(in: .newlines) == answers.first)
        #expect(mock.requests("/oauth2/tokenP") == 2)
        // Never from argv: what is not a token on stdin is refused.
        let garbage = try await box.runAsync(["token", "invalidate", a.name], stdin: "not a token\n", env: later)
        #expect(garbage.status == 2 && garbage.stderr.contains("not an access token"))
        // Through an agent: the same answer, POST .../access-token/invalidate.
        try FileManager.default.createDirectory(atPath: box.dir + "/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        #expect(try await box.runAsync(["agent", "start"], env: later).status == 0)
        let viaAgent = try await box.runAsync(["token", "invalidate", a.name], stdin: dead + "\n", env: ["KISVAULT_PASSPHRASE": nil])
        #expect(viaAgent.status == 0 && viaAgent.stdout.trimmingCharacters(in: .newlines) == answers.first, "\(viaAgent.stderr)")
        let audit = try await box.runAsync(["audit", "list", "--account", a.name, "--format", "json"])
        #expect(audit.stdout.components(separatedBy: "\"token.invalidate\"").count - 1 == 1, "one drop recorded")
        _ = try? await box.runAsync(["agent", "stop"])
        await mock.stop()
    }

    /// A stand-in for the official sample's token logic (kis_auth.py's read_token and auth,
    /// written for this test, not KIS's file): today's KIS<YYYYMMDD> under ~/KIS/config,
    /// `valid-date` compared with the machine's local time as text; only when that fails
    /// does it ask KIS (here, the mock) for a token of its own.
    static let sampleStandIn = """
        import datetime, json, os, sys, urllib.request
        path = os.path.join(os.path.expanduser("~"), "KIS", "config", "KIS" + datetime.datetime.today().strftime("%Y%m%d"))
        token = None
        if os.path.exists(path):
            fields = dict(line.split(": ", 1) for line in open(path).read().splitlines() if ": " in line)
            if fields.get("valid-date", "") > datetime.datetime.today().strftime("%Y-%m-%d %H:%M:%S"):
                token = fields["token"]
        if token is None:
            body = json.dumps({"grant_type": "client_credentials", "appkey": sys.argv[2], "appsecret": sys.argv[3]}).encode()
            req = urllib.request.Request(sys.argv[1] + "/oauth2/tokenP", data=body, headers={"content-type": "application/json"})
            token = json.load(urllib.request.urlopen(req))["access_token"]
            print("requested")
        print(token)
        """

    @Test func tokenExportFeedsTheSampleWithoutARequest() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 1)
        let a = accounts[0]
        let script = box.write("sample.py", Self.sampleStandIn)
        // A machine far from Korea time: the sample compares in local time.
        for zone in ["America/New_York", "Asia/Seoul", "UTC"] {
            let zoned: [String: String?] = ["TZ": zone]
            let export = try await box.runAsync(["token", "export", a.name, "--format", "kis-sample"], env: zoned)
            #expect(export.status == 0, "\(export.stderr)")
            let before = mock.requests("/oauth2/tokenP")
            let run = try await box.runAsync([script, mock.baseURL, a.appkey, a.appsecret], env: zoned, tool: "", wrapper: ["/usr/bin/env", "python3"])
            #expect(run.status == 0 && !run.stdout.contains("requested"), "\(zone): \(run.stdout) \(run.stderr)")
            let stored = try await box.runAsync(["token", "get", a.name])
            #expect(run.stdout == stored.stdout, "the sample uses the token kisvault holds")
            #expect(mock.requests("/oauth2/tokenP") == before, "\(zone): the sample asked KIS")
        }
        // The sample names its file for the local day: Seoul is a day ahead of the other
        // two from 15:00 UTC on, so one file or two.
        let days = Set(["America/New_York", "Asia/Seoul", "UTC"].map { zone -> String in
            let day = DateFormatter()
            day.locale = Locale(identifier: "en_US_POSIX")
            day.timeZone = TimeZone(identifier: zone)
            day.dateFormat = "yyyyMMdd"
            return "KIS" + day.string(from: Date())
        })
        let files = try FileManager.default.contentsOfDirectory(atPath: box.dir + "/home/KIS/config")
        #expect(Set(files) == days || Set(files).count == days.count, "\(files) for \(days.sorted())")
        for file in files {
            let mode = try FileManager.default.attributesOfItem(atPath: box.dir + "/home/KIS/config/" + file)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
        // env and json next to each other, in a directory of the user's choice.
        let out = box.dir + "/tokens"
        #expect(try await box.runAsync(["token", "export", a.name, "--format", "env", "--dir", out]).status == 0)
        #expect(try await box.runAsync(["token", "export", a.name, "--format", "json", "--dir", out]).status == 0)
        let env = try String(contentsOfFile: out + "/\(a.name).env", encoding: .utf8)
        #expect(env.hasPrefix("KIS_ACCESS_TOKEN=eyJ") && env.contains("KIS_ACCESS_TOKEN_EXPIRES_AT="))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/\(a.name).token.json"))) as? [String: String]
        #expect(json?["access_token"]?.hasPrefix("eyJ") == true && json?["access_token_token_expired"]?.count == 19)
        #expect(mock.requests("/oauth2/tokenP") == 1)
        await mock.stop()
    }

    @Test func execKisSampleGivesTheSampleItsFilesAndCleansUp() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 1)
        let a = accounts[0]
        try FileManager.default.createDirectory(atPath: box.dir + "/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let script = box.write("sample.py", Self.sampleStandIn)
        let run = try await box.runAsync(["exec", a.name, "--kis-sample", "--", "python3", script, mock.baseURL, a.appkey, a.appsecret],
                                         env: ["PATH": "/usr/local/bin:/usr/bin:/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "")])
        #expect(run.status == 0 && !run.stdout.contains("requested"), "\(run.stdout) \(run.stderr)")
        #expect(mock.requests("/oauth2/tokenP") == 1, "kisvault's one issuance, none by the sample")
        #expect(run.stdout == (try await box.runAsync(["token", "get", a.name])).stdout)
        // The private HOME is gone afterwards: after a normal exit, and after SIGKILL.
        let runDir = box.dir + "/run"
        #expect(try FileManager.default.contentsOfDirectory(atPath: runDir).filter { $0.hasPrefix("kisvault-exec-") }.isEmpty)
        let killed = try await box.runAsync(["exec", a.name, "--kis-sample", "--", "/bin/sh", "-c",
                                             "test -f \"$HOME/KIS/config/kis_devlp.yaml\" && kill -9 $$"])
        #expect(killed.status == 137, "\(killed.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: runDir).filter { $0.hasPrefix("kisvault-exec-") }.isEmpty)
        #expect(try await box.runAsync(["exec", a.name, "--kis-sample", "--", "/bin/sh", "-c", "exit 42"]).status == 42)
        // SIGTERM to kisvault reaches the command, whose status kisvault exits with.
        let ready = box.dir + "/ready", got = box.dir + "/got"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["exec", a.name, "--kis-sample", "--", "/bin/sh", "-c",
                             "trap 'echo term > \(got); exit 3' TERM; echo up > \(ready); while true; do sleep 0.05; done"]
        process.environment = box.environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        #expect(try await CLIAgentTests.waitFor { FileManager.default.fileExists(atPath: ready) })
        kill(process.processIdentifier, SIGTERM)
        let exited = try await CLIAgentTests.waitFor { !process.isRunning }
        #expect(exited)
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationStatus == 3 && (try? String(contentsOfFile: got, encoding: .utf8)) == "term\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: runDir).filter { $0.hasPrefix("kisvault-exec-") }.isEmpty)
        await mock.stop()
    }

    @Test func aTokenAskedForElsewhereIsNamedAsTheCause() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 1)
        // KIS answers EGW00133 although kisvault has not asked this minute: another program did.
        mock.queueError("EGW00133", path: "/oauth2/tokenP", count: 5)
        let r = try await box.runAsync(["token", "get", accounts[0].name, "--no-wait"])
        #expect(r.status == 6, "\(r.stderr)")
        #expect(r.stderr.contains("another program asked KIS for a token") && r.stderr.contains("token export"), "\(r.stderr)")
        await mock.stop()
    }
}
