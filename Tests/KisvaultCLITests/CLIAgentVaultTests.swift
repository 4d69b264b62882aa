import Foundation
import KISMock
import Testing

/// The seam issue's defect: an agent for vault A must do nothing for a command aimed at
/// vault B (two vaults on one machine, one account name in both). Each command that uses
/// the agent names its vault; the agent refuses before acting (`vault_differs`) and the
/// command unlocks B itself. A's audit log and A's appkeys at KIS see nothing.
@Suite struct CLIAgentVaultTests {
    @Test func anAgentForAnotherVaultDoesNothing() async throws {
        let inA = MockAccounts.generate(count: 1, environment: "real", seed: 11)
        let inB = MockAccounts.generate(count: 1, environment: "real", seed: 12)
        let name = inA[0].name
        #expect(inB[0].name == name && inB[0].appkey != inA[0].appkey)
        var configuration = MockConfiguration()
        configuration.accounts = inA + inB
        let mock = try await KISMockServer.start(configuration)
        let box = CLISandbox()
        box.environment["KISVAULT_KIS_BASE_URL"] = mock.baseURL
        try FileManager.default.createDirectory(atPath: box.dir + "/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try await box.initVault()
        #expect(try await box.runAsync(["account", "import", box.write("a.csv", MockAccounts.csv(inA))]).status == 0)
        let vaultB = box.dir + "/b/vault.db"
        let b: [String: String?] = ["KISVAULT_PATH": vaultB]
        #expect(try await box.runAsync(["init"], env: b).status == 0)
        #expect(try await box.runAsync(["account", "import", box.write("b.csv", MockAccounts.csv(inB))], env: b).status == 0)
        #expect(try await box.runAsync(["agent", "start"]).status == 0)
        func auditCount(_ env: [String: String?] = [:]) async throws -> Int {
            let list = try await box.runAsync(["audit", "list", "--format", "json"], env: env)
            return (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.count ?? -1
        }
        let auditA = try await auditCount()

        let approval = try await box.runAsync(["approval", "get", name, "--verbose"], env: b)
        #expect(approval.status == 0 && approval.stderr.contains("serves another vault"), "\(approval.stderr)")
        let token = try await box.runAsync(["token", "get", name], env: b)
        #expect(token.status == 0, "\(token.stderr)")
        #expect(mock.isValid(appkey: inB[0].appkey, token: token.stdout.trimmingCharacters(in: .newlines)), "B's token, from B's appkey")
        let exec = try await box.runAsync(["exec", name, "--", "/usr/bin/printenv", "KIS_APPKEY"], env: b)
        #expect(exec.status == 0 && exec.stdout.trimmingCharacters(in: .newlines) == inB[0].appkey, "\(exec.stderr)")
        let reveal = try await box.runAsync(["account", "show", name, "--reveal", "--format", "json"], env: b)
        #expect(reveal.status == 0 && reveal.stdout.contains(inB[0].appkey) && !reveal.stdout.contains(inA[0].appkey), "\(reveal.stderr)")
        let bulk = try await box.runAsync(["approval", "rotate", name], env: b)
        #expect(bulk.status == 0, "\(bulk.stderr)")
        mock.advanceClock(seconds: 61)
        let later: [String: String?] = ["KISVAULT_PATH": vaultB, "KISVAULT_CLOCK_OFFSET_SECONDS": "61"]
        let invalidate = try await box.runAsync(["token", "invalidate", name], stdin: token.stdout, env: later)
        #expect(invalidate.status == 0, "\(invalidate.stderr)")
        let revoke = try await box.runAsync(["token", "revoke", name], env: later)
        #expect(revoke.status == 0, "\(revoke.stderr)")

        #expect(try await auditCount() == auditA, "vault A's audit log is untouched")
        // Nothing was issued for A (the agent stored nothing there).
        for kind in ["approval", "token"] {
            let status = try await box.runAsync([kind, "status", "--format", "json"])
            #expect(status.stdout.contains("\"none\"") && !status.stdout.contains("\"fresh\""), "\(kind) in A: \(status.stdout)")
        }
        // The agent still serves its own vault.
        #expect(try await box.runAsync(["approval", "get", name], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        try await CLIAgentTests.stop(box)
        await mock.stop()
    }
}
