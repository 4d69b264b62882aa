import CredentialService
import Foundation
import GRDB
import KISMock
import KisvaultAgent
import Testing
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// The second round of attack (issue 25), its numeric class: a value from the environment,
/// a command line or an agent's request that kisvault acted on before checking it (a trap,
/// a year-0765 time, a value silently ignored). Each is refused where it enters.
@Suite struct CLIHostileValueTests {
    @Test func environmentValuesAreCheckedBeforeUse() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1).status == 0)
        let bad: [(String, String)] = [
            ("KISVAULT_BUSY_TIMEOUT", "1e300"), ("KISVAULT_BUSY_TIMEOUT", "nan"), ("KISVAULT_BUSY_TIMEOUT", "inf"),
            ("KISVAULT_BUSY_TIMEOUT", "1e12"), ("KISVAULT_BUSY_TIMEOUT", "-1"), ("KISVAULT_BUSY_TIMEOUT", "abc"),
            ("KISVAULT_CLOCK_OFFSET_SECONDS", "1e300"), ("KISVAULT_CLOCK_OFFSET_SECONDS", "1e15"),
            ("KISVAULT_CLOCK_OFFSET_SECONDS", "86400000000"), ("KISVAULT_CLOCK_OFFSET_SECONDS", "abc"),
            ("KISVAULT_HOST_ID", "a:b"), ("KISVAULT_HOST_ID", ""), ("KISVAULT_HOST_ID", "host\u{1b}[2J"),
        ]
        for (name, value) in bad {
            let r = try await box.runAsync(["approval", "get", "alpha"], env: [name: value])
            #expect(r.status == 2 && r.stderr.hasPrefix("kisvault: \(name)") && r.stdout.isEmpty, "\(name)=\(value): \(r.status) \(r.stderr)")
            #expect(!r.stderr.contains("\u{1b}"))
        }
        // Nothing was attempted: no issuance recorded, no time written.
        let audit = try await box.runAsync(["audit", "list", "--format", "json"])
        #expect(!audit.stdout.contains("approval.issue") && !audit.stdout.contains("0765"), "\(audit.stdout)")
        // Values in range work, spaces around a number included.
        let fine = try await box.runAsync(["account", "list"], env: ["KISVAULT_BUSY_TIMEOUT": " 2 ", "KISVAULT_CLOCK_OFFSET_SECONDS": "-86400", "KISVAULT_HOST_ID": "machine-a.example_1"])
        #expect(fine.status == 0 && fine.stdout.contains("alpha"), "\(fine.stderr)")
    }

    @Test func bulkOptionsAreRangeChecked() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1).status == 0)
        for options in [["--rate", "inf"], ["--rate", "nan"], ["--rate", "0"], ["--min-ttl", "99999999999999999999h"], ["--min-ttl", "24h"],
                        ["--concurrency", "0"], ["--timeout", "0s"]] {
            let r = try await box.runAsync(["approval", "issue", "--all"] + options)
            #expect(r.status == 2 && r.stderr.contains(options[0]), "\(options): \(r.stderr)")
        }
    }

    /// The agent ranges-checks every number of a request before acting: `"timeout": -1e300`
    /// once killed it (an Int64 conversion trap) and left its socket behind.
    @Test func agentRangeChecksEveryNumericField() async throws {
        let (box, mock, _) = try await CLIAgentTests.setUp(count: 2)
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let socket = CLIAgentTests.socket(box)
        let bodies = [#""timeout": -1e300"#, #""timeout": 1e300"#, #""timeout": 0"#, #""min_ttl": 1e300"#, #""min_ttl": -1"#,
                      #""rate": 0"#, #""rate": 1e300"#, #""concurrency": 0"#, #""concurrency": 100000"#]
        for field in bodies {
            let body = Array(#"{"kind": "approval", "mode": "issue", "all": true, \#(field)}"#.utf8)
            let answer = try await withCheckedThrowingContinuation { continuation in
                Thread.detachNewThread {
                    continuation.resume(with: Result { try AgentClient.request(socket: socket, method: "POST", target: "/v1/bulk", body: body) })
                }
            }
            #expect(answer.status == 400 && answer.json?["error"] as? String == "bad_request", "\(field): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
        }
        for query in ["nan", "inf", "-1", "1e300", "86400"] {
            let answer = try await CLIAgentTests.get(box, "/v1/accounts/\(try await firstName(box))/approval-key?min_ttl=\(query)")
            #expect(answer.status == 400, "min_ttl=\(query): \(answer.status)")
        }
        // Still serving, and nothing reached KIS.
        let status = try await CLIAgentTests.get(box, "/v1/status")
        #expect(status.status == 200 && status.json?["locked"] as? Bool == false)
        #expect(mock.requests("/oauth2/Approval") == 0)
        try await CLIAgentTests.stop(box)
        await mock.stop()
    }

    func firstName(_ box: CLISandbox) async throws -> String {
        let list = try await box.runAsync(["account", "list", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
        return try #require(rows?.first?["name"] as? String)
    }
}

extension CLIHostileValueTests {
    /// `--timeout` is a deadline for the whole call: a server that answers at once and then
    /// sends its body a byte a second (a minute and more of it) is cut off at 3 s.
    @Test func timeoutIsATotalDeadline() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 1) {
            $0.failRate = 1
            $0.faults = [.drip]
        }
        let r = try await box.runAsync(["approval", "get", accounts[0].name, "--timeout", "3s"], timeout: 40)
        #expect(r.status == 6 && r.stderr.contains("in time") && r.stdout.isEmpty, "\(r.status) \(r.stderr)")
        #expect(mock.requests("/oauth2/Approval") == 1, "no retry after the deadline")
        await mock.stop()
    }
}

extension CLIHostileValueTests {
    /// SIGTERM while `token rotate` waits out KIS's minute: the account is not attempted,
    /// the process ends at once (130), and no second token request reaches KIS later.
    @Test func interruptDuringTheTokenMinuteSendsNothing() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 1)
        let name = accounts[0].name
        #expect(try await box.runAsync(["token", "get", name]).status == 0)
        #expect(mock.requests("/oauth2/tokenP") == 1)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["token", "rotate", name, "--format", "json", "--verbose"]
        process.environment = box.environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // The wait is said on stderr; read until it is.
        var said = Data()
        let reader = err.fileHandleForReading
        while !String(decoding: said, as: UTF8.self).contains("once-a-minute") {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            said += chunk
        }
        #expect(String(decoding: said, as: UTF8.self).contains("once-a-minute"), "\(String(decoding: said, as: UTF8.self))")
        let interrupted = ContinuousClock.now
        kill(process.processIdentifier, SIGTERM)
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: said + reader.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let took = ContinuousClock.now - interrupted
        #expect(process.terminationStatus == 130, "\(stderr)")
        #expect(took < .seconds(30), "ended \(took) after the signal, not after the minute")
        let results = (try JSONSerialization.jsonObject(with: stdout) as? [String: Any])?["results"] as? [[String: Any]] ?? []
        #expect(results.first?["error_code"] as? String == "not-attempted", "\(results)")
        // A minute on, still only the one request: nothing was left to fire.
        mock.advanceClock(seconds: 61)
        try await Task.sleep(for: .seconds(1))
        #expect(mock.requests("/oauth2/tokenP") == 1)
        await mock.stop()
    }
}

extension CLIHostileValueTests {
    /// Recorded times in the future (a clock that ran hours ahead and was corrected, a row
    /// edited to year 9999) are not believed: the credential is issued again rather than
    /// handed out or skipped as fresh, no wait is longer than KIS's minute, and `doctor`
    /// names the account.
    @Test func futureRecordedTimesAreNotBelieved() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 2)
        let (ahead, edited) = (accounts[0].name, accounts[1].name)
        for name in [ahead, edited] { #expect(try await box.runAsync(["token", "get", name]).status == 0) }
        let first = try await box.runAsync(["token", "get", ahead])
        // A machine three hours ahead wrote the first account's times; the second's were
        // edited to year 9999.
        try await box.tamper { db in
            let later = Timestamp.string(Date().addingTimeInterval(3 * 3600))
            let laterEnd = Timestamp.string(Date().addingTimeInterval(27 * 3600))
            for (name, issued, expires) in [(ahead, later, laterEnd), (edited, "9999-01-01T00:00:00.000Z", "9999-01-02T00:00:00.000Z")] {
                try db.execute(sql: "UPDATE credentials SET issued_at = ?, expires_at = ? WHERE kind = 'token' AND account_id = (SELECT id FROM accounts WHERE name = ?)", arguments: [issued, expires, name])
                try db.execute(sql: "UPDATE issuance SET last_request_at = ? WHERE kind = 'token' AND account_id = (SELECT id FROM accounts WHERE name = ?)", arguments: [issued, name])
            }
        }
        let doctor = try await box.runAsync(["doctor", "--skip-unlock"])
        #expect(doctor.stdout.contains("times") && doctor.stdout.contains("\(ahead) (token)") && doctor.stdout.contains("\(edited) (token)"), "\(doctor.stdout)")
        // Both are issued again at once (past KIS's real minute on the mock's clock too),
        // not waited on for hours nor handed out.
        mock.advanceClock(seconds: 61)
        let offset: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "61"]
        let again = try await box.runAsync(["token", "get", ahead, "--no-wait"], env: offset)
        // (Within six hours KIS hands back the same token; what matters is that it was asked.)
        #expect(again.status == 0 && again.stdout == first.stdout && mock.requests("/oauth2/tokenP") == 3, "\(again.stderr)")
        let rotated = try await box.runAsync(["token", "rotate", edited, "--no-wait", "--format", "json"], env: offset)
        #expect(rotated.status == 0 && rotated.stdout.contains("rotated"), "\(rotated.stdout) \(rotated.stderr)")
        #expect(mock.requests("/oauth2/tokenP") == 4)
        let clean = try await box.runAsync(["doctor", "--skip-unlock"], env: offset)
        #expect(clean.stdout.contains("no recorded time is ahead"), "\(clean.stdout)")
        await mock.stop()
    }
}

extension CLIHostileValueTests {
    /// `kisvault lock` while the agent runs a bulk job: the store is never closed under it
    /// (that was "SQLite error 21" and keys issued at KIS but lost). The run stops taking
    /// accounts, what was in flight is stored, the rest is not attempted and its leases
    /// given back, so a run here right after finishes at once and issues only the rest.
    @Test func lockDuringABulkRunLosesNothing() async throws {
        let count = 150
        let (box, mock, _) = try await CLIAgentTests.setUp(count: count) { $0.latencyMilliseconds = 60 }
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let none: [String: String?] = ["KISVAULT_PASSPHRASE": nil]
        let run = Task { try await box.runAsync(["approval", "issue", "--all", "--concurrency", "16", "--format", "json"], env: none, timeout: 120) }
        #expect(try await CLIAgentTests.waitFor(30) { mock.requests("/oauth2/Approval") >= 20 })
        #expect(try await box.runAsync(["lock"]).status == 0)
        let first = try await run.value
        #expect(first.status == 7, "\(first.status) \(first.stderr)")
        #expect(!first.stdout.contains("SQLite") && !first.stdout.contains("not-stored") && !first.stderr.contains("SQLite"), "\(first.stdout.prefix(2000))")
        let results = (try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])?["results"] as? [[String: Any]] ?? []
        let stored = results.filter { $0["status"] as? String == "issued" }.count
        let skippedOrLocked = results.filter { ($0["message"] as? String)?.contains("the agent was locked") == true }.count
        #expect(results.count == count && stored + skippedOrLocked == count, "\(stored) stored, \(skippedOrLocked) not attempted")
        #expect(stored == mock.requests("/oauth2/Approval"), "every key KIS issued was stored: \(stored) of \(mock.requests("/oauth2/Approval"))")
        // Here, with the passphrase, while the locked agent still runs: no lease of its is
        // left to wait for, and only the rest is issued.
        let again = try await box.runAsync(["approval", "issue", "--all", "--concurrency", "16", "--format", "json"], timeout: 60)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(mock.requests("/oauth2/Approval") == count, "only the rest issued")
        let doctor = try await box.runAsync(["doctor"])
        #expect(doctor.status == 0, "\(doctor.stdout)")
        try await CLIAgentTests.stop(box)
        await mock.stop()
    }
}

extension CLIHostileValueTests {
    /// Two accounts' names swapped with sqlite3 (the vault file): `exec` and `token get`
    /// hand out nothing under the wrong name, `doctor` names the swap. (The team vault's
    /// twin, with psql, is in CLITeamVaultTests.)
    @Test func namesSwappedInTheFileHandOutNothing() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 2)
        let (a, b) = (accounts[0].name, accounts[1].name)
        for name in [a, b] { #expect(try await box.runAsync(["token", "get", name]).status == 0) }
        func swap() async throws {
            try await box.tamper { db in
                try db.execute(sql: "UPDATE accounts SET name = 'swap-tmp' WHERE name = ?", arguments: [a])
                try db.execute(sql: "UPDATE accounts SET name = ? WHERE name = ?", arguments: [a, b])
                try db.execute(sql: "UPDATE accounts SET name = ? WHERE name = 'swap-tmp'", arguments: [b])
            }
        }
        try await swap()
        try await Self.expectNothingHandedOut(box, a, sealedFor: b)
        try await swap()
        try await Self.expectHandedOut(box, a, appkey: accounts[0].appkey)
        #expect(mock.requests("/oauth2/tokenP") == 2)
        await mock.stop()
    }
}

extension CLIHostileValueTests {
    /// After a swap of `name`'s row with `other`'s: no appkey or token under `name`, and
    /// `doctor` says the row holds `other`'s secrets.
    static func expectNothingHandedOut(_ box: CLISandbox, _ name: String, sealedFor other: String) async throws {
        let exec = try await box.runAsync(["exec", name, "--", "/usr/bin/printenv", "KIS_APPKEY"])
        #expect(exec.status == 1 && exec.stdout.isEmpty && exec.stderr.contains("failed to authenticate"), "\(exec.status) \(exec.stdout) \(exec.stderr)")
        let token = try await box.runAsync(["token", "get", name])
        #expect(token.status == 1 && token.stdout.isEmpty, "\(token.status) \(token.stderr)")
        let doctor = try await box.runAsync(["doctor"])
        #expect(doctor.status == 1 && doctor.stdout.contains("holds the secrets sealed for '\(other)'"), "\(doctor.stdout)")
    }

    static func expectHandedOut(_ box: CLISandbox, _ name: String, appkey: String) async throws {
        let back = try await box.runAsync(["exec", name, "--", "/usr/bin/printenv", "KIS_APPKEY"])
        #expect(back.status == 0 && back.stdout.trimmingCharacters(in: .newlines) == appkey, "\(back.stderr)")
    }
}

extension CLIHostileValueTests {
    /// `vault copy` of a source whose audit chain is broken: refused before anything is
    /// written, the source named as the one at fault, no destination left behind.
    @Test func aDamagedSourceIsNotCopied() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1).status == 0)
        #expect(try await box.addAccount("beta", seed: 2).status == 0)
        try await box.tamper { try $0.execute(sql: "DELETE FROM audit WHERE seq = 2") }
        let destination = box.dir + "/copy.db"
        let copy = try await box.runAsync(["vault", "copy", box.vault, destination])
        #expect(copy.status == 1 && copy.stderr.contains("the source fails its check 'audit chain'") && copy.stderr.contains("nothing was copied"), "\(copy.stderr)")
        #expect(!FileManager.default.fileExists(atPath: destination))
    }
}

extension CLIHostileValueTests {
    /// `token export` into a directory others may write (0777, no sticky bit) is refused,
    /// and its refusal of a destination that is not a regular file offers no `-` it lacks.
    @Test func tokenExportOnlyIntoDirectoriesOfOnesOwn() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 1)
        let name = accounts[0].name
        let open = box.dir + "/open"
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        chmod(open, 0o777)
        let loose = try await box.runAsync(["token", "export", name, "--format", "kis-sample", "--dir", open])
        #expect(loose.status == 2 && loose.stderr.contains("others may write to it"), "\(loose.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: open)) ?? []).isEmpty)
        chmod(open, 0o700)
        let today = (try await box.runAsync(["token", "export", name, "--format", "kis-sample", "--dir", open])).stderr
        let written = try FileManager.default.contentsOfDirectory(atPath: open)
        #expect(written.count == 1, "\(today)")
        // The file's name taken by a directory: refused, without a '-' to offer.
        try FileManager.default.removeItem(atPath: open + "/" + written[0])
        try FileManager.default.createDirectory(atPath: open + "/" + written[0], withIntermediateDirectories: true)
        let blocked = try await box.runAsync(["token", "export", name, "--format", "kis-sample", "--dir", open])
        #expect(blocked.status == 2 && blocked.stderr.contains("only a regular file is replaced") && !blocked.stderr.contains("'-'"), "\(blocked.stderr)")
        await mock.stop()
    }
}
