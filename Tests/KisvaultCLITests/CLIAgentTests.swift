import CredentialService
import Foundation
import KISMock
import KisvaultAgent
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The agent through the built binary and raw socket requests.
@Suite struct CLIAgentTests {
    static func setUp(count: Int = 3, configure: (inout MockConfiguration) -> Void = { _ in }) async throws -> (CLISandbox, KISMockServer, [MockAccount]) {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: count, configure: configure)
        try FileManager.default.createDirectory(atPath: box.dir + "/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return (box, mock, accounts)
    }

    static func socket(_ box: CLISandbox) -> String { box.dir + "/run/kisvault/agent.sock" }

    /// A raw request on a thread of its own: a blocking socket read on the two-thread
    /// cooperative pool would starve the in-process mock the agent talks to.
    static func get(_ box: CLISandbox, _ target: String) async throws -> AgentClient.Response {
        let path = socket(box)
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try AgentClient.request(socket: path, method: "GET", target: target) })
            }
        }
    }

    /// Waits for `condition`, checking every 50 ms, for at most `seconds`: a wait on an
    /// event, bounded, instead of a sleep that guesses how long the event takes.
    static func waitFor(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    static func stop(_ box: CLISandbox) async throws {
        _ = try? await box.runAsync(["agent", "stop"])
    }

    @Test func servesCredentialsWithoutAPassphrase() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        let start = try await box.runAsync(["agent", "start", "--idle-lock", "10m"])
        #expect(start.status == 0, "\(start.stderr)")
        #expect(start.stdout == "KISVAULT_AGENT_SOCK=\(Self.socket(box)); export KISVAULT_AGENT_SOCK;\n")
        let mode = try FileManager.default.attributesOfItem(atPath: Self.socket(box))[.posixPermissions] as! Int
        #expect(mode == 0o600)
        let name = accounts[0].name
        let viaAgent = try await box.runAsync(["approval", "get", name], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(viaAgent.status == 0 && viaAgent.stdout.count == 287, "\(viaAgent.stderr)")
        let raw = try await Self.get(box, "/v1/accounts/\(name)/approval-key?min_ttl=600")
        #expect(raw.status == 200 && raw.json?["approval_key"] as? String == viaAgent.stdout.trimmingCharacters(in: .newlines))
        #expect(raw.json?["from_cache"] as? Bool == true)
        let list = try await Self.get(box, "/v1/accounts")
        #expect((list.json?["accounts"] as? [[String: Any]])?.count == 3)
        // Many concurrent clients: nothing lost, one issuance.
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var last = ""
                    for _ in 0..<10 {
                        let r = try await Self.get(box, "/v1/accounts/\(accounts[1].name)/access-token")
                        last = r.json?["access_token"] as? String ?? "missing \(r.status)"
                    }
                    return last
                }
            }
            var all = Set<String>()
            for try await t in group { all.insert(t) }
            return all
        }
        #expect(tokens.count == 1 && tokens.first?.hasPrefix("eyJ") == true)
        #expect(mock.requests("/oauth2/tokenP") == 1)
        // Errors are JSON with stable codes.
        let unknown = try await Self.get(box, "/v1/accounts/nobody/access-token")
        #expect(unknown.status == 404 && unknown.json?["error"] as? String == "not_found")
        let malformed = try await Self.get(box, "/v1/accounts/\(name)/access-token?min_ttl=soon")
        #expect(malformed.status == 400 && malformed.json?["error"] as? String == "bad_request")
        let cliUnknown = try await box.runAsync(["token", "get", "nobody"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(cliUnknown.status == 4)
        // exec takes everything from the agent too: no passphrase anywhere.
        let exec = try await box.runAsync(["exec", name, "--token", "--", "/bin/sh", "-c",
                                           "test \"$KIS_APPKEY\" = \"\(accounts[0].appkey)\" && test -n \"$KIS_ACCESS_TOKEN\" && exit 9"],
                                          env: ["KISVAULT_PASSPHRASE": nil])
        #expect(exec.status == 9, "\(exec.stderr)")
        // Each hand-out of the appkey and appsecret through the agent is audited.
        let handedOut = try await Self.get(box, "/v1/accounts/\(name)/app-credentials")
        #expect(handedOut.status == 200)
        let audit = try await box.runAsync(["audit", "list", "--account", name, "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.contains { $0["action"] as? String == "exec" && $0["detail"] as? String == "via agent" }, "\(audit.stdout)")
        #expect(rows.contains { $0["action"] as? String == "account.reveal" && $0["detail"] as? String == "app-credentials via agent" })
        #expect(try await Self.get(box, "/v1/nothing-here").status == 404)
        try await Self.stop(box)
        #expect(!FileManager.default.fileExists(atPath: Self.socket(box)))
        await mock.stop()
    }

    @Test func lockedAgentNeverHandsOutAKey() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        #expect(try await box.runAsync(["lock"]).status == 0)
        let raw = try await Self.get(box, "/v1/accounts/\(accounts[0].name)/approval-key")
        #expect(raw.status == 423 && raw.json?["error"] as? String == "locked")
        let status = try await box.runAsync(["agent", "status"])
        #expect(status.status == 3 && status.stdout.contains("locked"))
        let noPass = try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(noPass.status == 3)
        // With a passphrase the CLI falls back to unlocking itself.
        #expect(try await box.runAsync(["approval", "get", accounts[0].name]).status == 0)
        try await Self.stop(box)
        await mock.stop()
    }

    @Test func idleLockAndWrongPassphrase() async throws {
        let (box, mock, _) = try await Self.setUp()
        let wrong = try await box.runAsync(["agent", "start"], env: ["KISVAULT_PASSPHRASE": "nope"])
        #expect(wrong.status == 3 && !FileManager.default.fileExists(atPath: Self.socket(box)))
        #expect(try await box.runAsync(["agent", "start", "--idle-lock", "1s"]).status == 0)
        // The idle rule itself is AgentStateClockTests'; here only that the option is wired.
        #expect(try await Self.waitFor { try await Self.get(box, "/v1/status").json?["locked"] as? Bool == true })
        let status = try await Self.get(box, "/v1/status")
        #expect(status.json?["locked"] as? Bool == true)
        #expect((status.json?["lock_reason"] as? String)?.contains("idle") == true)
        try await Self.stop(box)
        await mock.stop()
    }

    @Test func staleSocketIsReplacedAndTwoAgentsAreRefused() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let pid = try await Self.get(box, "/v1/status").json?["pid"] as! Int
        // A second agent on the same vault, even on another socket, is refused.
        let second = try await box.runAsync(["agent", "start", "--socket", box.dir + "/run/kisvault/other.sock"])
        #expect(second.status == 2 && second.stderr.contains("already"), "\(second.stderr)")
        kill(Int32(pid), SIGKILL)
        #expect(try await Self.waitFor { (try? await Self.get(box, "/v1/status")) == nil }, "the killed agent still answers")
        #expect(FileManager.default.fileExists(atPath: Self.socket(box)))
        let noAgent = try await box.runAsync(["approval", "get", accounts[0].name])
        #expect(noAgent.status == 0, "a dead agent's socket must not break the CLI: \(noAgent.stderr)")
        let again = try await box.runAsync(["agent", "start"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try await Self.get(box, "/v1/status").json?["locked"] as? Bool == false)
        try await Self.stop(box)
        await mock.stop()
    }

    @Test func vaultReplacedUnderARunningAgent() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let copy = box.dir + "/copy.db"
        try FileManager.default.copyItem(atPath: box.vault, toPath: copy)
        try FileManager.default.removeItem(atPath: box.vault)
        try FileManager.default.moveItem(atPath: copy, toPath: box.vault)
        let raw = try await Self.get(box, "/v1/accounts/\(accounts[0].name)/approval-key")
        #expect(raw.status == 409 && raw.json?["error"] as? String == "vault_changed")
        #expect(try await Self.get(box, "/v1/status").json?["locked"] as? Bool == true)
        try await Self.stop(box)
        await mock.stop()
    }

    @Test func peerOfAnotherUserIsRefused() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        // Loosen the socket's modes so that only the peer check stands in the way.
        for path in [box.dir, box.dir + "/run", box.dir + "/run/kisvault"] { chmod(path, 0o755) }
        chmod(Self.socket(box), 0o666)
        let curl = try await box.runAsync(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "--unix-socket", Self.socket(box),
                                           "http://agent/v1/accounts/\(accounts[0].name)/approval-key"], tool: "", wrapper: ["/usr/bin/setpriv"])
        #expect(curl.stdout.contains("\"forbidden\"") && !curl.stdout.contains("approval_key"), "\(curl.stdout) \(curl.stderr)")
        for path in [box.dir + "/run", box.dir + "/run/kisvault"] { chmod(path, 0o700) }
        try await Self.stop(box)
        await mock.stop()
    }

    @Test func agentKilledMidRequest() async throws {
        let (box, mock, accounts) = try await Self.setUp { $0.latencyMilliseconds = 1500 }
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let pid = try await Self.get(box, "/v1/status").json?["pid"] as! Int
        async let result = box.runAsync(["approval", "get", accounts[0].name])
        // Killed once its request to KIS is in flight (the mock has seen it).
        #expect(try await Self.waitFor { mock.requests("/oauth2/Approval") >= 1 })
        kill(Int32(pid), SIGKILL)
        let r = try await result
        #expect(r.status == 0, "the CLI falls back to unlocking itself: \(r.stderr)")
        #expect(r.stdout.count == 287)
        await mock.stop()
    }

    @Test func lockThenUnlockServesAgainWithoutAPassphrase() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let pid = try await Self.get(box, "/v1/status").json?["pid"] as? Int
        #expect(try await box.runAsync(["lock"]).status == 0)
        let locked = try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(locked.status == 3)
        // A wrong passphrase leaves it locked; the right one, given once, unlocks it in place.
        let wrong = try await box.runAsync(["unlock"], env: ["KISVAULT_PASSPHRASE": "nope"])
        #expect(wrong.status == 3 && wrong.stderr.contains("wrong passphrase"), "\(wrong.stderr)")
        #expect(try await Self.get(box, "/v1/status").json?["locked"] as? Bool == true)
        let passphrase = box.write("pw", CLISandbox.passphrase + "\n")
        let unlock = try await box.runAsync(["unlock", "--passphrase-file", passphrase], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(unlock.status == 0 && unlock.stderr.contains("unlocked"), "\(unlock.stderr)")
        let status = try await Self.get(box, "/v1/status")
        #expect(status.json?["locked"] as? Bool == false && status.json?["pid"] as? Int == pid)
        let served = try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(served.status == 0 && served.stdout.count == 287, "\(served.stderr)")
        #expect(try await box.runAsync(["unlock"], env: ["KISVAULT_PASSPHRASE": nil]).stderr.contains("already unlocked"))
        try await Self.stop(box)
        let none = try await box.runAsync(["unlock"])
        #expect(none.status == 4 && none.stderr.contains("kisvault agent start"))
        await mock.stop()
    }

    @Test func revealAndRevokeThroughTheAgentWithoutAPassphrase() async throws {
        let (box, mock, accounts) = try await Self.setUp()
        let a = accounts[0]
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let none: [String: String?] = ["KISVAULT_PASSPHRASE": nil]
        let shown = try await box.runAsync(["account", "show", a.name, "--reveal", "--format", "json"], env: none)
        #expect(shown.status == 0 && shown.stdout.contains(a.appkey) && shown.stdout.contains(a.appsecret), "\(shown.stderr)")
        let audit = try await box.runAsync(["audit", "list", "--account", a.name, "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.contains { $0["action"] as? String == "account.reveal" && $0["detail"] as? String == "via agent" })
        // A masked view is not taken from the agent: without a passphrase it cannot be had.
        #expect(try await box.runAsync(["account", "show", a.name], env: none).status == 3)
        #expect(try await box.runAsync(["token", "get", a.name], env: none).status == 0)
        let revoked = try await box.runAsync(["token", "revoke", a.name], env: none)
        #expect(revoked.status == 0 && revoked.stderr.contains("revoked the access token"), "\(revoked.stderr)")
        #expect(mock.requests("/oauth2/revokeP") == 1)
        #expect(try await box.runAsync(["token", "revoke", a.name], env: none).status == 4)
        try await Self.stop(box)
        await mock.stop()
    }

    /// `issue`/`rotate --all` through an unlocked agent: no passphrase, the report and the
    /// exit codes as without an agent, the run's failures per account.
    @Test func bulkRunsThroughTheAgentWithoutAPassphrase() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 5)
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        let none: [String: String?] = ["KISVAULT_PASSPHRASE": nil]
        let issued = try await box.runAsync(["approval", "issue", "--all", "--format", "json"], env: none)
        #expect(issued.status == 0, "\(issued.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(issued.stdout.utf8)) as? [String: Any]
        #expect((report?["summary"] as? [String: Int])?["issued"] == 5, "\(issued.stdout)")
        #expect(mock.requests("/oauth2/Approval") == 5)
        // A named account that does not exist: refused before anything runs.
        #expect(try await box.runAsync(["approval", "rotate", "nobody"], env: none).status == 4)
        // One account KIS rejects: exit 7, the others rotated.
        mock.queueError("EGW00105", path: "/oauth2/Approval")
        let rotated = try await box.runAsync(["approval", "rotate", "--all", "--concurrency", "1", "--format", "json"], env: none)
        #expect(rotated.status == 7, "\(rotated.stderr)")
        let again = try JSONSerialization.jsonObject(with: Data(rotated.stdout.utf8)) as? [String: Any]
        #expect((again?["summary"] as? [String: Int])?["rotated"] == 4 && (again?["summary"] as? [String: Int])?["failed"] == 1, "\(rotated.stdout)")
        // The agent did the work: without it the same command needs the passphrase.
        try await Self.stop(box)
        #expect(try await box.runAsync(["approval", "issue", accounts[0].name], env: none).status == 3)
        await mock.stop()
    }

    /// `--renew-before`: with the clocks 23 hours on, the tagged accounts' credentials
    /// (1 hour left, under the 2-hour margin) are renewed once each, a failing renewal is
    /// shown with its retry and retried with backoff, the untagged account is left alone,
    /// and a `get` then answers from the vault.
    @Test func renewBeforeRenewsEachSelectedAccountOnce() async throws {
        let (box, mock, accounts) = try await Self.setUp(count: 3)
        for account in accounts.prefix(2) {
            #expect(try await box.runAsync(["account", "edit", account.name, "--add-tag", "desk"]).status == 0)
        }
        #expect(try await box.runAsync(["approval", "issue", "--all"]).status == 0)
        #expect(try await box.runAsync(["token", "issue", "--all"]).status == 0)
        let first = try await box.runAsync(["approval", "get", accounts[0].name]).stdout
        #expect(mock.requests("/oauth2/Approval") == 3 && mock.requests("/oauth2/tokenP") == 3)
        let later: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "82800"]
        mock.advanceClock(seconds: 82_800)
        // Three answers KIS gives for no reason the manager can fix: both renewals of the
        // first pass fail, one of the retries, then they go through.
        mock.queueError("EGW99999", path: "/oauth2/Approval", count: 3)
        let start = try await box.runAsync(["agent", "start", "--renew-before", "2h", "--renew-tag", "desk", "--renew-interval", "1s"], env: later)
        #expect(start.status == 0, "\(start.stderr)")
        func renewal() async throws -> [String: Any] {
            try await Self.get(box, "/v1/status").json?["renewal"] as? [String: Any] ?? [:]
        }
        let sawFailing = try await Self.waitFor(20) {
            let failing = try await renewal()["failing"] as? [[String: Any]] ?? []
            return failing.contains { $0["error_code"] as? String == "EGW99999" && $0["kind"] as? String == "approval" && $0["next_attempt_at"] != nil }
        }
        #expect(sawFailing, "a failing renewal shows in status")
        let shown = try await box.runAsync(["agent", "status"])
        #expect(shown.stdout.contains("renew:   accounts tagged desk, under 2h left, every 1s"), "\(shown.stdout)")
        let renewed = try await Self.waitFor(30) {
            let r = try await renewal()
            return r["renewed_approval_keys"] as? Int == 2 && r["renewed_tokens"] as? Int == 2 && (r["failing"] as? [Any])?.isEmpty == true
        }
        let finalState = try await renewal()
        #expect(renewed, "\(finalState)")
        // Two more passes change nothing: each was renewed once.
        let passes = try await renewal()["passes"] as? Int ?? 0
        #expect(try await Self.waitFor(20) { (try await renewal()["passes"] as? Int ?? 0) >= passes + 2 })
        // The passes with the refusals in them are counted as failed ones; the later not.
        let counted = try await renewal()
        let failedPasses = counted["failed_passes"] as? Int ?? -1
        #expect(failedPasses >= 1 && failedPasses < (counted["passes"] as? Int ?? 0), "\(counted)")
        #expect(mock.requests("/oauth2/Approval") == 3 + 2 + 2 + 1, "2 renewals, 3 refused on the way (2, then 1 retried)")
        #expect(mock.requests("/oauth2/tokenP") == 3 + 2)
        // Answered from the vault: the renewed key, no request.
        let now = try await box.runAsync(["approval", "get", accounts[0].name], env: later)
        #expect(now.status == 0 && now.stdout != first && !now.stdout.isEmpty)
        let untouched = try await box.runAsync(["approval", "status", "--format", "json"], env: later)
        #expect(untouched.status == 0)
        #expect(mock.requests("/oauth2/Approval") == 8)
        let audit = try await box.runAsync(["audit", "list", "--format", "json"], env: later)
        #expect(audit.stdout.components(separatedBy: "renewed by the agent").count - 1 == 4 + 3, "4 renewals and 3 failures audited")
        try await Self.stop(box)
        await mock.stop()
    }
}
