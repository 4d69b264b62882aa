import Foundation
import GRDB
import Testing
import VaultCrypto
@testable import VaultStore

@Suite struct VaultIntegrityTests {
    @Test func fieldMovedToAnotherRowFailsToOpen() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("alpha", seed: 1))
        try vault.addAccount(Fixtures.account("beta", seed: 2))
        try Fixtures.tamper(dir.file("vault.db"), "UPDATE accounts SET appsecret = (SELECT appsecret FROM accounts WHERE name = 'alpha') WHERE name = 'beta'")
        #expect(throws: VaultError.fieldAuthenticationFailed(account: "beta", field: "appsecret")) { try vault.secrets(of: "beta") }
        _ = try vault.secrets(of: "alpha")
        let failed = vault.secretChecks().first { $0.check == "sealed fields" }
        #expect(failed?.status == .fail)
        #expect(failed?.detail.contains("beta (appsecret)") == true)
        #expect(failed?.detail.contains("alpha") == false)
    }

    /// Swapping two rows' names (or an environment) outside kisvault: neither row opens,
    /// doctor says whose secrets each row holds; renames through kisvault keep working.
    @Test func namesChangedOutsideKisvaultFailToOpen() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("alpha", seed: 1))
        try vault.addAccount(Fixtures.account("beta", seed: 2))
        try vault.renameAccount("beta", to: "gamma")
        #expect(try vault.secrets(of: "gamma").appkey.utf8String() == Fixtures.credentials(2).appkey)
        var toReal = AccountChanges()
        toReal.environment = .real
        try vault.editAccount("gamma", toReal)
        #expect(try vault.secrets(of: "gamma").appkey.utf8String() == Fixtures.credentials(2).appkey)
        try Fixtures.tamper(dir.file("vault.db"), """
            UPDATE accounts SET name = 'swap' WHERE name = 'alpha'; UPDATE accounts SET name = 'alpha' WHERE name = 'gamma';
            UPDATE accounts SET name = 'gamma' WHERE name = 'swap'; UPDATE accounts SET environment = 'real'
            """)
        #expect(throws: VaultError.fieldAuthenticationFailed(account: "alpha", field: "appkey")) { try vault.secrets(of: "alpha") }
        #expect(throws: VaultError.fieldAuthenticationFailed(account: "gamma", field: "appkey")) { try vault.secrets(of: "gamma") }
        let failed = vault.secretChecks().first { $0.check == "sealed fields" }
        #expect(failed?.status == .fail && failed?.detail.contains("the row named 'alpha' holds the secrets sealed for 'gamma'") == true, "\(failed?.detail ?? "")")
    }

    /// A vault whose fields were sealed before they were bound to names (format 2) opens,
    /// and its first unlock that can write re-seals them: afterwards only bound keys open.
    @Test func olderFieldsAreBoundAtTheFirstWritableUnlock() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("alpha", seed: 1))
        // As format 2 wrote it: the appkey under the unbound key, the marker pending.
        let unbound = vault.keys.seal(SecureBytes(utf8: Fixtures.credentials(1).appkey), kind: AccountField.kind,
                                      recordID: try vault.vault.read { try $0.sealedAccount(named: "alpha")!.id }, binding: .legacy, field: "appkey")
        try vault.vault.write { records in
            let id = try records.sealedAccount(named: "alpha")!.id
            let current = try records.sealedAccount(named: "alpha")!
            try records.updateAccount(id: id, .appCredentials(fingerprint: current.appkeyFingerprint, appkey: unbound, appsecret: current.appsecret, at: nil))
            try records.setMetaText(FieldBinding.metaKey, FieldBinding.pending)
        }
        #expect(throws: VaultError.self) { try vault.secrets(of: "alpha") }
        let again = try Vault.open(path: dir.file("vault.db")).unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase))
        #expect(try again.secrets(of: "alpha").appkey.utf8String() == Fixtures.credentials(1).appkey)
        #expect(try again.vault.read { try $0.metaText(FieldBinding.metaKey) } == FieldBinding.done)
        #expect(!again.legacyFields.isSet)
        let stored = try again.vault.read { try $0.sealedAccount(named: "alpha")!.appkey }
        #expect(stored != unbound)
    }

    @Test func fieldMovedToAnotherColumnFailsToOpen() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("alpha", seed: 1))
        try Fixtures.tamper(dir.file("vault.db"), "UPDATE accounts SET appkey = appsecret WHERE name = 'alpha'")
        #expect(throws: VaultError.fieldAuthenticationFailed(account: "alpha", field: "appkey")) { try vault.secrets(of: "alpha") }
    }

    @Test func keyslotFromAnotherVaultIsRefused() throws {
        let dir = TemporaryDirectory()
        let a = try Fixtures.makeVault(in: dir, name: "a.db")
        let b = try Vault.create(path: dir.file("b.db"), passphrase: SecureBytes(utf8: "attacker"), kdf: .insecureForTesting, label: "evil", actor: "t")
        a.vault.close(); b.vault.close()
        let slot = try DatabaseQueue(path: dir.file("b.db")).read { db in
            try Row.fetchOne(db, sql: "SELECT salt, wrapped_key FROM keyslots")!
        }
        let salt: Data = slot["salt"], wrapped: Data = slot["wrapped_key"]
        try Fixtures.tamper(dir.file("a.db"), "INSERT INTO keyslots(label, kdf, opslimit, memlimit, salt, wrapped_key, created_at) VALUES ('evil', 'argon2id13', 1, 8192, x'\(hexString(salt))', x'\(hexString(wrapped))', 'now')")
        let vault = try Vault.open(path: dir.file("a.db"))
        #expect(throws: VaultError.foreignKeyslot(label: "evil")) { try vault.unlock(passphrase: SecureBytes(utf8: "attacker")) }
    }

    @Test func auditChainDetectsEditDeleteReorderAndTruncation() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("vault.db")
        let vault = try Fixtures.makeVault(in: dir)
        for i in 0..<5 { try vault.addAccount(Fixtures.account("acct\(i)", seed: i)) }
        #expect(try vault.verifyAudit() == AuditVerification(rows: 6, problems: []))
        let pristine = try Data(contentsOf: URL(fileURLWithPath: path + "-wal"))
        _ = pristine

        try Fixtures.tamper(path, "UPDATE audit SET account = 'someone-else' WHERE seq = 3")
        #expect(try !vault.verifyAudit().isIntact)
        try Fixtures.tamper(path, "UPDATE audit SET account = 'acct1' WHERE seq = 3")
        #expect(try vault.verifyAudit().isIntact)

        try Fixtures.tamper(path, "CREATE TABLE saved AS SELECT * FROM audit; DELETE FROM audit WHERE seq = 4")
        let deleted = try vault.verifyAudit()
        #expect(deleted.problems.contains { $0.contains("missing") })
        try Fixtures.tamper(path, "INSERT INTO audit SELECT * FROM saved WHERE seq = 4")
        #expect(try vault.verifyAudit().isIntact)

        // Reorder: swap the contents of rows 2 and 3.
        try Fixtures.tamper(path, """
            UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -2;
            """)
        #expect(try !vault.verifyAudit().isIntact)
        try Fixtures.tamper(path, "DELETE FROM audit; INSERT INTO audit SELECT * FROM saved")
        #expect(try vault.verifyAudit().isIntact)

        try Fixtures.tamper(path, "DELETE FROM audit WHERE seq = 6")
        #expect(try vault.verifyAudit().problems.contains { $0.contains("at the end were deleted") })
    }

    @Test func keyslotsAddRemoveAndChange() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addKeyslot(label: "alice", passphrase: SecureBytes(utf8: "alice pw"), kdf: .insecureForTesting)
        #expect(throws: VaultError.keyslotExists(label: "alice")) {
            try vault.addKeyslot(label: "alice", passphrase: SecureBytes(utf8: "x"), kdf: .insecureForTesting)
        }
        let reopened = try Vault.open(path: dir.file("vault.db"))
        let asAlice = try reopened.unlock(passphrase: SecureBytes(utf8: "alice pw"))
        #expect(asAlice.keyslotLabel == "alice")
        try asAlice.changePassphrase(to: SecureBytes(utf8: "alice new"))
        #expect(throws: VaultError.wrongPassphrase(keyslotsTried: 2)) { try reopened.unlock(passphrase: SecureBytes(utf8: "alice pw")) }
        _ = try reopened.unlock(passphrase: SecureBytes(utf8: "alice new"))
        _ = try reopened.unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase))
        try vault.removeKeyslot(label: "default")
        #expect(throws: VaultError.lastKeyslot(label: "alice")) { try vault.removeKeyslot(label: "alice") }
        #expect(throws: VaultError.keyslotNotFound(label: "bob")) { try vault.removeKeyslot(label: "bob") }
        #expect(try reopened.keyslots().map(\.label) == ["alice"])
    }

    @Test func oneAccountPerAppkeyAndValidation() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("alpha", seed: 1))
        #expect(throws: VaultError.duplicateAppkey(existing: "alpha", adding: "beta")) { try vault.addAccount(Fixtures.account("beta", seed: 1)) }
        #expect(throws: VaultError.accountExists(name: "alpha")) { try vault.addAccount(Fixtures.account("alpha", seed: 2)) }
        var bad = Fixtures.account("gamma", seed: 3)
        bad.secrets.appsecret = SecureBytes(utf8: Fixtures.credentials(3).appsecret + "\n")
        #expect {
            try vault.addAccount(bad)
        } throws: { error in
            guard case VaultError.invalidAccount(let name, let reason) = error else { return false }
            return name == "gamma" && reason.contains("181") && reason.contains("whitespace")
        }
        #expect(throws: VaultError.self) { try vault.addAccount(Fixtures.account("-bad", seed: 4)) }
        #expect(try vault.vault.accounts().map(\.name) == ["alpha"])
    }

    @Test func editRenameRemove() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("alpha", seed: 1, tags: ["a"]))
        try vault.addAccount(Fixtures.account("beta", seed: 2))
        var changes = AccountChanges()
        changes.environment = .real
        changes.addTags = ["b"]
        changes.removeTags = ["a"]
        let (k, s) = Fixtures.credentials(9)
        changes.credentials = (SecureBytes(utf8: k), SecureBytes(utf8: s))
        let edited = try vault.editAccount("alpha", changes)
        #expect(edited.environment == .real && edited.tags == ["b"])
        #expect(try vault.secrets(of: "alpha").appkey.utf8String() == k)
        var clash = AccountChanges()
        let (k2, s2) = Fixtures.credentials(2)
        clash.credentials = (SecureBytes(utf8: k2), SecureBytes(utf8: s2))
        #expect(throws: VaultError.duplicateAppkey(existing: "beta", adding: "alpha")) { try vault.editAccount("alpha", clash) }
        try vault.renameAccount("alpha", to: "alpha2")
        #expect(try vault.secrets(of: "alpha2").appkey.utf8String() == k)
        #expect(throws: VaultError.accountExists(name: "beta")) { try vault.renameAccount("alpha2", to: "beta") }
        try vault.removeAccount("alpha2")
        #expect(throws: VaultError.accountNotFound(name: "alpha2")) { try vault.removeAccount("alpha2") }
        #expect(try vault.vault.accounts().map(\.name) == ["beta"])
    }

    @Test func importIsAllOrNothing() throws {
        let dir = TemporaryDirectory()
        let vault = try Fixtures.makeVault(in: dir)
        try vault.addAccount(Fixtures.account("existing", seed: 100))
        let before = try Fixtures.dump(dir.file("vault.db"))
        var rows = (0..<10).map { ImportCandidate(location: "line \($0 + 2)", account: Fixtures.account("n\($0)", seed: $0)) }
        rows.append(ImportCandidate(location: "line 12", account: Fixtures.account("n3", seed: 50)))
        rows.append(ImportCandidate(location: "line 13", account: Fixtures.account("other", seed: 100)))
        #expect {
            _ = try vault.importAccounts(rows, update: false, source: "a.csv")
        } throws: { error in
            guard case VaultError.importRejected(_, let problems) = error else { return false }
            return problems.map(\.location) == ["line 12", "line 13"]
        }
        #expect(try Fixtures.dump(dir.file("vault.db")) == before)
        rows.removeLast(2)
        #expect(try vault.importAccounts(rows, update: false, source: "a.csv") == ImportSummary(added: 10, updated: 0))
        #expect(try vault.importAccounts(Array(rows.prefix(2)), update: true, source: "a.csv") == ImportSummary(added: 0, updated: 2))
        #expect(try vault.vault.accounts().count == 11)
        #expect(try vault.verifyAudit().isIntact)
    }

    @Test func busyVaultFailsAfterTimeout() throws {
        let dir = TemporaryDirectory()
        _ = try Fixtures.makeVault(in: dir).vault.close()
        let vault = try Vault.open(path: dir.file("vault.db"), busyTimeout: 0.2)
        let unlocked = try vault.unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase))
        var config = Configuration()
        config.allowsUnsafeTransactions = true
        let holder = try DatabaseQueue(path: dir.file("vault.db"), configuration: config)
        try holder.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }
        #expect(throws: VaultError.busy(path: dir.file("vault.db"), timeoutSeconds: 0.2)) {
            try unlocked.addAccount(Fixtures.account("x", seed: 1))
        }
        try holder.writeWithoutTransaction { try $0.execute(sql: "ROLLBACK") }
        try unlocked.addAccount(Fixtures.account("x", seed: 1))
    }

    /// GRDB's pool sets its writer to `synchronous = NORMAL` when it enables WAL; the vault
    /// must put it back to FULL, whether just created or opened again.
    @Test func writerCommitsAreSynchronousFull() throws {
        let dir = TemporaryDirectory()
        let created = try Fixtures.makeVault(in: dir)
        #expect(try (created.vault.storage as! SQLiteStorage).db.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
        created.vault.close()
        let reopened = try Vault.open(path: dir.file("vault.db"))
        #expect(try (reopened.storage as! SQLiteStorage).db.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
    }

    @Test func timestampsRoundTrip() {
        let date = Date(timeIntervalSince1970: 1_764_039_845.678)
        let text = Timestamp.string(date)
        #expect(text == "2025-11-25T03:04:05.678Z")
        #expect(Timestamp.parse(text) == date)
        #expect(Timestamp.string(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.string(Date(timeIntervalSince1970: 1_709_251_199.999)) == "2024-02-29T23:59:59.999Z")
        #expect(Timestamp.parse("2025-11-25") == Date(timeIntervalSince1970: 1_764_028_800))
        #expect(Timestamp.parse("2025-11-25T03:04") == Date(timeIntervalSince1970: 1_764_039_840))
        #expect(Timestamp.parse("yesterday") == nil)
        #expect(Timestamp.parse("2025-13-01") == nil)
    }
}
