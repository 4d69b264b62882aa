import Foundation
import KISMock
import Testing

/// Small things a daily user expects (part of the daily-use issue).
@Suite struct CLIDailyUseTests {
    @Test func helpVersionAndJSONShortcut() async throws {
        let box = CLISandbox()
        try await box.initVault()
        let nosuch = try await box.runAsync(["help", "nosuch"])
        #expect(nosuch.status == 2 && nosuch.stdout.isEmpty && nosuch.stderr.contains("no command 'nosuch'"), "\(nosuch.stderr)")
        let help = try await box.runAsync(["help", "account", "list"])
        #expect(help.status == 0 && help.stdout.contains("List accounts"))
        let typo = try await box.runAsync(["acount", "list"])
        #expect(typo.status == 2 && typo.stderr.contains("did you mean 'kisvault account'?"), "\(typo.stderr)")
        let verb = try await box.runAsync(["approval", "gte", "alpha"])
        #expect(verb.status == 2 && verb.stderr.contains("did you mean 'kisvault approval get'?"), "\(verb.stderr)")
        let far = try await box.runAsync(["zzzzzz"])
        #expect(far.status == 2 && far.stderr.contains("the commands are"))
        let version = try await box.runAsync(["version"])
        #expect(version.status == 0 && version.stdout == "0.1.0\n")
        #expect(try await box.addAccount("alpha", seed: 1, env: "real").status == 0)
        #expect(try await box.addAccount("beta", seed: 2, env: "paper").status == 0)
        let json = try await box.runAsync(["account", "list", "--json", "--env", "mock"])
        let rows = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.map { $0["name"] as? String } == ["beta"], "\(json.stdout)")
        let prod = try await box.runAsync(["account", "list", "--env", "prod"])
        #expect(prod.status == 2 && prod.stderr.contains("'real', 'mock' or 'paper'"))
    }

    @Test func noSuchAccountBeforeAnyPassphrase() async throws {
        let box = CLISandbox()
        try await box.initVault()
        for arguments in [["account", "show", "nosuch"], ["account", "show", "nosuch", "--reveal"], ["account", "rename", "nosuch", "other"],
                          ["account", "remove", "nosuch", "--yes"], ["account", "edit", "nosuch", "--add-tag", "x"]] {
            // No passphrase anywhere and no terminal: the answer must still be "no such account".
            let r = try await box.runAsync(arguments, env: ["KISVAULT_PASSPHRASE": nil], wrapper: ["/usr/bin/setsid", "-w"])
            #expect(r.status == 4 && r.stderr.contains("no account named 'nosuch'"), "\(arguments): \(r.stderr)")
        }
    }

    @Test func accountNumbersHaveOneForm() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1, extra: ["--account-no", "1234567802"]).status == 0)
        let (k, s) = CLISandbox.credentials(2)
        let csv = box.write("a.csv", "name,environment,appkey,appsecret,account_no\nbeta,mock,\(k),\(s),8765432101\n")
        #expect(try await box.runAsync(["account", "import", csv]).status == 0)
        #expect(try await box.runAsync(["account", "edit", "beta", "--account-no", "1111111122"]).status == 0)
        let export = try await box.runAsync(["account", "export", "--plaintext"])
        #expect(export.stdout.contains("\"12345678-02\"") && export.stdout.contains("\"11111111-22\""), "\(export.stdout)")
        #expect(!export.stdout.contains("1234567802"))
    }

    @Test func statusTakesNamesAndStatesAndCounts() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 3)
        #expect(try await box.runAsync(["approval", "get", accounts[1].name]).status == 0)
        let all = try await box.runAsync(["approval", "status"])
        #expect(all.status == 0 && all.stderr.contains("1 fresh, 0 expiring, 0 expired, 2 none, 0 rejected"), "\(all.stderr)")
        let fresh = try await box.runAsync(["approval", "status", "--state", "fresh", "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(fresh.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.map { $0["account"] as? String } == [accounts[1].name])
        let named = try await box.runAsync(["token", "status", accounts[0].name, accounts[2].name, "--format", "json"])
        let tokenRows = try JSONSerialization.jsonObject(with: Data(named.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(tokenRows.count == 2 && tokenRows.allSatisfy { $0["state"] as? String == "none" })
        let unknown = try await box.runAsync(["approval", "status", "nosuch"])
        #expect(unknown.status == 4)
        let badState = try await box.runAsync(["approval", "status", "--state", "stale"])
        #expect(badState.status == 2)
        await mock.stop()
    }

    /// Runs `kisvault ARGS` on a terminal (`script`), typing `input`.
    func onTerminal(_ box: CLISandbox, _ arguments: String, input: String) async throws -> CLIResult {
        try await box.runAsync(["-q", "-e", "-c", "\(CLISandbox.binaryDirectory)/kisvault \(arguments)", "/dev/null"],
                               stdin: input, env: ["KISVAULT_PASSPHRASE": nil], tool: "", wrapper: ["/usr/bin/script"], timeout: 30)
    }

    @Test func promptsForgive() async throws {
        // A mismatch is asked again; the second try counts.
        let box = CLISandbox()
        let r = try await onTerminal(box, "init --kdf insecure-test", input: "first one here\nsecond one here\ncorrect horse\ncorrect horse\n")
        #expect(r.status == 0, "\(r.stdout)")
        #expect(r.stdout.contains("do not match; try again (2 tries left)") && r.stdout.contains("kisvault account add NAME"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: box.vault))
        // A short passphrase needs a yes; a no asks for another.
        let short = CLISandbox()
        let s = try await onTerminal(short, "init --kdf insecure-test", input: "abc\nn\nlong enough\nlong enough\n")
        #expect(s.status == 0 && s.stdout.contains("this passphrase is short (3 characters)"), "\(s.stdout)")
        let unlock = try await short.runAsync(["audit", "verify", "--passphrase-file", short.write("pw", "long enough\n")], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(unlock.status == 0)
        let accepted = CLISandbox()
        #expect(try await onTerminal(accepted, "init --kdf insecure-test", input: "abc\ny\nabc\n").status == 0)
        // A mistyped appkey is said at once and asked again, before the appsecret.
        let (k, secret) = CLISandbox.credentials(7)
        let add = try await onTerminal(box, "account add alpha --env mock --passphrase-file \(box.write("pw", "correct horse\n"))",
                                       input: "\(k)x\n\(k)\n\(secret)\n")
        #expect(add.status == 0 && add.stdout.contains("the appkey is 37 characters long") && add.stdout.contains("2 tries left"), "\(add.stdout)")
        #expect(try await box.runAsync(["account", "show", "alpha", "--passphrase-file", box.dir + "/pw"]).status == 0)
    }

    /// KIS unreachable: a bulk run stops after a few connection failures in a row instead
    /// of every account waiting out its retries, says so once, exits 6; one `get` is
    /// bounded by --timeout and, with --verbose, shows each retry.
    @Test func aHostThatIsDownStopsTheRunEarlyAndSaysSo() async throws {
        let (box, mock, _) = try await CLICredentialTests.setUp(count: 40)
        await mock.stop()
        let bulk = try await box.runAsync(["approval", "issue", "--all", "--concurrency", "4", "--timeout", "2s", "--format", "json"])
        #expect(bulk.status == 6, "\(bulk.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(bulk.stdout.utf8)) as? [String: Any]
        let results = report?["results"] as? [[String: Any]] ?? []
        let tried = results.filter { $0["error_code"] as? String == "unavailable" }.count
        let skipped = results.filter { $0["error_code"] as? String == "unreachable" }.count
        #expect(results.count == 40 && tried + skipped == 40 && tried <= 8 + 4 && skipped >= 40 - 12, "tried \(tried), not attempted \(skipped)")
        #expect(bulk.stderr.contains("could not be reached for any of the 40 accounts"), "\(bulk.stderr)")
        // As text: the not-attempted ones on one line, the counts last.
        let text = try await box.runAsync(["approval", "issue", "--all", "--concurrency", "4", "--timeout", "2s", "--quiet"])
        #expect(text.status == 6 && text.stdout.contains("failed unreachable: ") && text.stdout.components(separatedBy: "\n").count < 20, "\(text.stdout)")
        #expect(text.stderr.contains("40 accounts: 40 failed (failed: "), "\(text.stderr)")
        // One account: bounded by --timeout; --verbose shows the retries.
        let one = try await box.runAsync(["approval", "get", "acct-0001", "--timeout", "2s", "--verbose"])
        #expect(one.status == 6 && one.stderr.contains("retrying /oauth2/Approval in"), "\(one.stderr)")
        let bad = try await box.runAsync(["approval", "get", "acct-0001", "--timeout", "0s"])
        #expect(bad.status == 2)
    }

    /// At 80 columns the progress line fits and is redrawn in place: no drawn line is wider
    /// than the terminal, so none wraps into a new line per redraw.
    @Test func progressFitsEightyColumns() async throws {
        let (box, mock, _) = try await CLICredentialTests.setUp(count: 30) { $0.latencyMilliseconds = 60 }
        let command = "stty cols 80 rows 24; \(CLISandbox.binaryDirectory)/kisvault approval issue --all --concurrency 2"
        let run = try await box.runAsync(["-q", "-e", "-c", command, "/dev/null"], tool: "", wrapper: ["/usr/bin/script"], timeout: 60)
        #expect(run.status == 0, "\(run.stdout)")
        let drawn = run.stdout.replacingOccurrences(of: "\u{1B}[2K", with: "").components(separatedBy: CharacterSet(charactersIn: "\r\n"))
        let progress = drawn.filter { $0.contains("/30") }
        #expect(progress.count >= 3, "redrawn several times: \(progress)")
        #expect(progress.allSatisfy { $0.count < 80 }, "\(progress.filter { $0.count >= 80 })")
        #expect(progress.last?.contains("30/30") == true)
        await mock.stop()
    }

    /// `kisvault status`: the vault, the agent and the counts, with no passphrase.
    @Test func statusAtAGlanceWithoutAPassphrase() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 3)
        #expect(try await box.runAsync(["approval", "get", accounts[0].name]).status == 0)
        let plain = try await box.runAsync(["status"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(plain.stdout.contains("(format 3, 3 accounts, 1 keyslots)") && plain.stdout.contains("agent:          not running"), "\(plain.stdout)")
        #expect(plain.stdout.contains("approval keys:  1 fresh, 0 expiring, 0 expired, 2 none, 0 rejected"), "\(plain.stdout)")
        let json = try await box.runAsync(["status", "--format", "json"], env: ["KISVAULT_PASSPHRASE": nil, "KISVAULT_CLOCK_OFFSET_SECONDS": "86500"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((object?["approval_keys"] as? [String: Int])?["expired"] == 1 && (object?["agent"] as? [String: Any])?["running"] as? Bool == false, "\(json.stdout)")
        await mock.stop()
    }

    /// Shell completion: the scripts generate, and the completions of account names and
    /// tags come from the vault with no passphrase.
    @Test func completionOffersAccountNamesAndTagsWithoutAPassphrase() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 3)
        for shell in ["bash", "zsh", "fish"] {
            let script = try await box.runAsync(["--generate-completion-script", shell])
            #expect(script.status == 0 && script.stdout.contains("kisvault"), "\(shell): \(script.stderr)")
        }
        let names = try await box.runAsync(["---completion", "approval", "get", "--", "positional@0", "3", "4", "kisvault", "approval", "get", "acct"],
                                           env: ["KISVAULT_PASSPHRASE": nil])
        #expect(names.stdout.split(separator: "\n").map(String.init) == accounts.map(\.name), "\(names.stdout) \(names.stderr)")
        let tags = try await box.runAsync(["---completion", "token", "issue", "--", "--tag", "4", "0", "kisvault", "token", "issue", "--tag", ""],
                                          env: ["KISVAULT_PASSPHRASE": nil])
        #expect(tags.stdout == "generated\nlive\n", "\(tags.stdout) \(tags.stderr)")
        // No vault there: nothing, and no error on the terminal.
        let none = try await box.runAsync(["---completion", "approval", "get", "--", "positional@0", "3", "0", "kisvault", "approval", "get", ""],
                                          env: ["KISVAULT_PATH": box.dir + "/nowhere.db"])
        #expect(none.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && none.stderr.isEmpty, "\(none.stdout) \(none.stderr)")
        await mock.stop()
    }

    /// States in colour on a terminal; none with NO_COLOR, --no-color, or a pipe.
    @Test func colourOnATerminalOnly() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 2)
        #expect(try await box.runAsync(["approval", "get", accounts[0].name]).status == 0)
        func onTerminal(_ arguments: String, _ env: [String: String?] = [:]) async throws -> String {
            try await box.runAsync(["-q", "-e", "-c", "\(CLISandbox.binaryDirectory)/kisvault \(arguments)", "/dev/null"],
                                   env: env, tool: "", wrapper: ["/usr/bin/script"], timeout: 30).stdout
        }
        let green = "\u{1B}[32mfresh\u{1B}[0m"
        let coloured = try await onTerminal("approval status")
        #expect(coloured.contains(green), "\(coloured)")
        #expect(!(try await onTerminal("approval status", ["NO_COLOR": "1"])).contains("\u{1B}["))
        #expect(!(try await onTerminal("approval status --no-color")).contains("\u{1B}["))
        let piped = try await box.runAsync(["approval", "status"])
        #expect(piped.stdout.contains("fresh") && !piped.stdout.contains("\u{1B}["))
        await mock.stop()
    }

    /// Ctrl-C in a bulk run: the workers stop, what landed is kept, the partial report is
    /// printed, exit 130; the same command again finishes the rest, nothing issued twice.
    @Test func interruptedBulkRunReportsWhatLandedAndExits130() async throws {
        let (box, mock, _) = try await CLICredentialTests.setUp(count: 60) { $0.latencyMilliseconds = 100 }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["approval", "issue", "--all", "--concurrency", "2", "--format", "json"]
        process.environment = box.environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        #expect(try await CLIAgentTests.waitFor(20) { mock.requests("/oauth2/Approval") >= 6 })
        kill(process.processIdentifier, SIGINT)
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("interrupted: "), "\(stderr)")
        let report = try JSONSerialization.jsonObject(with: stdout) as? [String: Any]
        let results = report?["results"] as? [[String: Any]] ?? []
        let stored = results.filter { $0["status"] as? String == "issued" }.count
        #expect(results.count == 60 && stored >= 6 && stored < 60, "\(stored) stored")
        let sent = mock.requests("/oauth2/Approval")
        let again = try await box.runAsync(["approval", "issue", "--all", "--concurrency", "8", "--format", "json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(mock.requests("/oauth2/Approval") == sent + (60 - stored), "only the rest issued")
        await mock.stop()
    }
}

extension CLIDailyUseTests {
    /// A name one or two edits from a real one: the error names the nearest (no
    /// passphrase needed to find them), for every kind of command that takes names.
    @Test func unknownAccountNamesSuggestTheNearest() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 3)
        let typo = String(accounts[0].name.dropLast(2)) + String(accounts[0].name.suffix(1))  // acct-0001 → acct-001
        let none: [String: String?] = ["KISVAULT_PASSPHRASE": nil]
        for arguments in [["approval", "get", typo], ["account", "show", typo], ["token", "rotate", typo], ["exec", typo, "--", "/bin/true"],
                          ["account", "rename", typo, "fresh-name"]] {
            let r = try await box.runAsync(arguments, env: none)
            #expect(r.status == 4 && r.stderr.contains("did you mean '\(accounts[0].name)'"), "\(arguments): \(r.status) \(r.stderr)")
        }
        let far = try await box.runAsync(["approval", "get", "zzzzzzzz"], env: none)
        #expect(far.status == 4 && !far.stderr.contains("did you mean"), "\(far.stderr)")
        #expect(mock.requests("/oauth2/Approval") == 0)
        await mock.stop()
    }
}

extension CLIDailyUseTests {
    /// As the README has it: only `KISVAULT_KIS_BASE_URL` set, `approval check` follows it
    /// to the same host and port, and kis-mock answers the WebSocket there too.
    @Test func approvalCheckWithOnlyTheBaseURL() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 1)
        #expect(box.environment["KISVAULT_KIS_WS_URL"] == nil && box.environment["KISVAULT_KIS_REAL_WS_URL"] == nil)
        #expect(try await box.runAsync(["approval", "get", accounts[0].name]).status == 0)
        let check = try await box.runAsync(["approval", "check", accounts[0].name, "--format", "json"])
        #expect(check.status == 0 && check.stdout.contains("\"ok\""), "\(check.status) \(check.stdout) \(check.stderr)")
        await mock.stop()
    }
}
