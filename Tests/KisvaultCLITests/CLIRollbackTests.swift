import Foundation
import GRDB
import KISMock
import Testing

/// No silent rollback (issue 23): a client remembers, per vault, the last audit row it
/// saw, and refuses a vault that ends before it or holds another row there, on a file as
/// on PostgreSQL, until `vault accept-restore` says the restore was meant.
@Suite struct CLIRollbackTests {
    @Test func aFileReplacedByAnOlderCopyIsRefusedUntilAccepted() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1).status == 0)
        let old = box.dir + "/old.db"
        try FileManager.default.copyItem(atPath: box.vault, toPath: old)
        #expect(try await box.addAccount("beta", seed: 2).status == 0)
        #expect(try await box.runAsync(["keyslot", "add", "bob", "--kdf", "insecure-test", "--new-passphrase-file", box.write("bob", "bob's passphrase\n")]).status == 0)
        // A second machine (its own state) that has seen the newer vault too.
        let other = box.dir + "/other-state"
        #expect(try await box.runAsync(["account", "show", "beta"], env: ["XDG_STATE_HOME": other]).status == 0)

        try FileManager.default.removeItem(atPath: box.vault)
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: box.vault + suffix) }
        try FileManager.default.copyItem(atPath: old, toPath: box.vault)
        for command in [["account", "show", "alpha"], ["account", "add", "gamma", "--env", "mock"], ["audit", "verify"], ["agent", "start", "--foreground"]] {
            let refused = try await box.runAsync(command, stdin: "", timeout: 30)
            #expect(refused.status == 1 && refused.stdout.isEmpty, "\(command): \(refused.stdout)")
            #expect(refused.stderr.contains("has been rolled back") && refused.stderr.contains("vault accept-restore"), "\(command): \(refused.stderr)")
        }
        // Metadata needs no key and proves nothing: it is listed as it is.
        #expect(try await box.runAsync(["account", "list"]).stdout.contains("alpha"))
        // doctor reports it as a failed check, and still runs the others.
        let doctor = try await box.runAsync(["doctor", "--format", "json"])
        #expect(doctor.status == 1 && doctor.stdout.contains("\"history\"") && doctor.stdout.contains("rolled back")
                && doctor.stdout.contains("chain"), "\(doctor.stdout)\(doctor.stderr)")

        let accepted = try await box.runAsync(["vault", "accept-restore"])
        #expect(accepted.status == 0 && accepted.stderr.contains("ended at row 2 where this machine had seen row 4"), "\(accepted.stderr)")
        #expect(try await box.runAsync(["account", "show", "alpha"]).status == 0)
        let audit = try await box.runAsync(["audit", "list", "--format", "json"])
        #expect(audit.stdout.contains("vault.restore-accepted"))
        // The other machine saw row 4 of the old history; once the restored vault has a
        // row 4 of its own, that is another history, not a newer one.
        let behind = try await box.runAsync(["account", "show", "alpha"], env: ["XDG_STATE_HOME": other])
        #expect(behind.status == 1 && behind.stderr.contains("has been rolled back"), "\(behind.stderr)")
        #expect(try await box.addAccount("delta", seed: 4).status == 0)
        let fork = try await box.runAsync(["account", "show", "alpha"], env: ["XDG_STATE_HOME": other])
        #expect(fork.status == 1 && fork.stderr.contains("another history"), "\(fork.stderr)")
        #expect(try await box.runAsync(["vault", "accept-restore"], env: ["XDG_STATE_HOME": other]).status == 0)
        #expect(try await box.runAsync(["account", "show", "alpha"], env: ["XDG_STATE_HOME": other]).status == 0)
    }

    @Test func anAgentRemembersWhatItWroteAndRefusesAnOlderVault() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp()
        let old = box.dir + "/old.db"
        try FileManager.default.copyItem(atPath: box.vault, toPath: old)
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        // Issued through the agent: audit rows this client wrote, remembered as it answers
        // (the memory's one file holds the vault's last row now, the agent still running).
        #expect(try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        let seen = box.dir + "/home/.local/state/kisvault/seen"
        let files = try FileManager.default.contentsOfDirectory(atPath: seen)
        let remembered = try String(contentsOfFile: seen + "/" + #require(files.first), encoding: .utf8).split(separator: " ").first.flatMap { Int($0) }
        let audit = try await box.runAsync(["audit", "list", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(files.count == 1 && remembered == rows.compactMap { $0["seq"] as? Int }.max(), "\(files) \(String(describing: remembered))")
        #expect(try await box.runAsync(["lock"]).status == 0)
        try FileManager.default.removeItem(atPath: box.vault)
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: box.vault + suffix) }
        try FileManager.default.copyItem(atPath: old, toPath: box.vault)
        let unlock = try await box.runAsync(["unlock"])
        #expect(unlock.status == 1 && unlock.stderr.contains("has been rolled back"), "\(unlock.stderr)")
        try await CLIAgentTests.stop(box)
        await mock.stop()
    }

    /// A head that names a row the log does not prove (one set by hand) is never taken for
    /// a newer history: had it been remembered, the real head would now read as a rollback.
    @Test func aForgedHeadIsNeverRemembered() async throws {
        let box = CLISandbox()
        try await box.initVault()
        #expect(try await box.addAccount("alpha", seed: 1).status == 0)
        try await box.tamper { db in try db.execute(sql: "UPDATE meta SET value = 99 WHERE key = 'audit_head_seq'") }
        #expect(try await box.runAsync(["account", "show", "alpha"]).status == 0)
        let verify = try await box.runAsync(["audit", "verify"])
        #expect(verify.status == 1 && verify.stdout.contains("row 99"), "\(verify.stdout)\(verify.stderr)")
        try await box.tamper { db in try db.execute(sql: "UPDATE meta SET value = 2 WHERE key = 'audit_head_seq'") }
        let show = try await box.runAsync(["account", "show", "alpha"])
        #expect(show.status == 0, "\(show.stderr)")
    }

    @Test(.enabled(if: teamVaultTestsRun, "no PostgreSQL to test against (KISVAULT_TEST_PG_URL): 'make test' starts one"))
    func aSchemaRestoredFromAnOlderCopyIsRefused() async throws {
        guard let (box, mock, accounts, url) = try await CLITeamVaultTests.setUp(count: 2) else { return }
        let schema = CLITeamVaultTests.schema(url)
        let snapshot = url.replacingOccurrences(of: "?schema=", with: "?schema=snap_")
        #expect(try await box.runAsync(["vault", "copy", url, snapshot]).status == 0)
        #expect(try await box.runAsync(["approval", "get", accounts[0].name]).status == 0)
        // The administrator swaps the older copy in for the live schema.
        try CLITeamVaultTests.psql(url, "ALTER SCHEMA \(schema) RENAME TO newer_\(schema); ALTER SCHEMA snap_\(schema) RENAME TO \(schema)")
        let refused = try await box.runAsync(["approval", "get", accounts[1].name])
        #expect(refused.status == 1 && refused.stdout.isEmpty && refused.stderr.contains("has been rolled back"), "\(refused.stderr)")
        #expect(mock.requests("/oauth2/Approval") == 1, "nothing was issued from the rolled-back vault")
        #expect(try await box.runAsync(["vault", "accept-restore"]).status == 0)
        #expect(try await box.runAsync(["approval", "get", accounts[1].name]).status == 0)
        await mock.stop()
    }
}
