import CredentialService
import Foundation
import KeyManager
import Testing
import VaultCrypto
import VaultStore

/// The vault's administration as a front end uses it: what can be refused without the
/// passphrase is refused before it is asked, the passphrase is asked once, and nothing is
/// half-done when a step refuses.
@Suite struct VaultAdminTests {
    /// Counts how often the passphrase is asked.
    final class Asked: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var times: Int { lock.withLock { count } }
        func ask() -> SecureBytes { lock.withLock { count += 1 }; return SecureBytes(utf8: "pw") }
    }

    static func vault() throws -> (path: String, admin: VaultAdmin, asked: Asked) {
        let dir = NSTemporaryDirectory() + "kisvault-admin-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/vault.db"
        try VaultAdmin.create(path: path, passphrase: SecureBytes(utf8: "pw"), kdf: .insecureForTesting, label: "default", busyTimeout: 5)
        let asked = Asked()
        return (path, VaultAdmin(path: path, busyTimeout: 5, unlock: UnlockSource(keyslot: nil) { asked.ask() }), asked)
    }

    static func secrets(_ seed: Character) -> AccountSecrets {
        AccountSecrets(appkey: SecureBytes(utf8: String(repeating: seed, count: 36)), appsecret: SecureBytes(utf8: String(repeating: seed, count: 180)),
                       typedAccountNumber: "1234567801", htsID: nil)
    }

    @Test func refusalsComeBeforeThePassphrase() throws {
        let (_, admin, asked) = try Self.vault()
        try admin.addAccount(name: "alpha", environment: .real, tags: ["desk"]) { Self.secrets("a") }
        #expect(asked.times == 1)
        // A taken name, a missing account, a bad new name: refused, nothing asked.
        #expect(throws: VaultError.accountExists(name: "alpha")) {
            try admin.addAccount(name: "alpha", environment: .mock, tags: []) { Issue.record("secrets read for a taken name"); return Self.secrets("b") }
        }
        #expect(throws: VaultError.accountNotFound(name: "beta")) { try admin.renameAccount("beta", to: "gamma") }
        #expect(throws: VaultError.accountNotFound(name: "beta")) { try admin.removeAccount("beta") {} }
        #expect(throws: VaultError.accountNotFound(name: "beta")) { try admin.editAccount("beta") { AccountChanges() } }
        #expect(throws: VaultError.self) { try admin.renameAccount("alpha", to: "bad name") }
        #expect(asked.times == 1)
        // A declined removal removes nothing and asks nothing.
        struct Declined: Error {}
        #expect(throws: Declined.self) { try admin.removeAccount("alpha") { throw Declined() } }
        #expect(try admin.accountNames() == ["alpha"] && asked.times == 1)
    }

    @Test func theAccountNumberIsStoredInItsOneForm() throws {
        let (_, admin, _) = try Self.vault()
        try admin.addAccount(name: "alpha", environment: .real, tags: []) { Self.secrets("a") }
        #expect(try admin.secrets(of: "alpha").1.accountNumber?.utf8String() == "12345678-01")
        try admin.editAccount("alpha") { var changes = AccountChanges(); changes.setAccountNumber("8765432102"); return changes }
        #expect(try admin.secrets(of: "alpha").1.accountNumber?.utf8String() == "87654321-02")
        try admin.editAccount("alpha") { var changes = AccountChanges(); changes.setAccountNumber(nil); return changes }
        #expect(try admin.secrets(of: "alpha").1.accountNumber == nil)
        #expect(AccountValidation.splitAccountNumber("87654321-02")! == ("87654321", "02"))
        #expect(AccountValidation.splitAccountNumber("8765432") == nil)
    }

    @Test func anImportWithOnlyProblemsAsksNothing() throws {
        let (_, admin, asked) = try Self.vault()
        let problem = ImportProblem(location: "line 2", account: "x", reason: "the appkey is missing")
        #expect(throws: VaultError.importRejected(source: "f.csv", problems: [problem])) {
            _ = try admin.importAccounts(update: false, source: "f.csv") { ([], [problem]) }
        }
        #expect(asked.times == 0)
    }

    @Test func aPlaintextExportNamesItsAccountsAndIsAuditedOnce() throws {
        let (_, admin, _) = try Self.vault()
        try admin.addAccount(name: "alpha", environment: .real, tags: []) { Self.secrets("a") }
        try admin.addAccount(name: "beta", environment: .mock, tags: []) { Self.secrets("b") }
        #expect(throws: VaultError.accountNotFound(name: "gamma")) { _ = try admin.plaintextExport(names: ["beta", "gamma"]) }
        let export = try admin.plaintextExport(names: ["beta", "alpha"])
        #expect(export.accounts.map(\.0.name) == ["beta", "alpha"])
        try export.audited("plaintext json, 2 accounts")
        let rows = try admin.auditRecords(account: nil, since: nil).filter { $0.action == "account.export" }
        #expect(rows.count == 1 && rows[0].detail == "plaintext json, 2 accounts")
    }

    @Test func aCopyToAnExistingDestinationAsksNothing() throws {
        let (path, admin, asked) = try Self.vault()
        #expect(throws: VaultError.vaultExists(path: path)) { _ = try admin.copy(to: path) }
        #expect(asked.times == 0)
        #expect(throws: ServiceError.self) { _ = try VaultAdmin.metadata(path: path).verifyAudit() }
        #expect(try VaultAdmin.metadata(path: path).overview().accounts == 0)
    }

    @Test func aBulkRunsOutcomeIsJudgedOnce() {
        func result(_ status: BulkItemResult.Status, _ code: String? = nil) -> BulkItemResult {
            BulkItemResult(account: "a", status: status, errorCode: code)
        }
        #expect(BulkOutcome([result(.issued), result(.skipped)]).code == nil)
        let unreachable = BulkOutcome([result(.failed, BulkItemResult.unreachableCode), result(.failed, BulkItemResult.unavailableCode)])
        #expect(unreachable.kisUnreachable && unreachable.code == .kisUnavailable)
        let partial = BulkOutcome([result(.rotated), result(.failed, "EGW00105"), result(.failed, BulkItemResult.notStoredCode)])
        #expect(!partial.kisUnreachable && partial.code == .partial && partial.stored == 1 && partial.notStored == 1 && partial.failed == 2)
    }
}
