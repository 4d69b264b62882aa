import Foundation
import Testing
import VaultCrypto
@testable import VaultStore

/// Where a test vault lives: a file, or a fresh schema of the test PostgreSQL database
/// (`KISVAULT_TEST_PG_URL`, set by `make test`, which starts a throwaway cluster).
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    static var pgURL: String? { ProcessInfo.processInfo.environment["KISVAULT_TEST_PG_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// Every backend that can run here: PostgreSQL whenever a test database is given.
    static var available: [Backend] { pgURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    /// A new, empty location of this backend.
    func location(_ dir: TemporaryDirectory, _ name: String = "vault") -> String {
        switch self {
        case .sqlite: return dir.file(name + ".db")
        case .postgres:
            let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
            return Backend.pgURL! + "?schema=\(schema)"
        }
    }
}

/// The store's behaviour, once, run against every backend: the same suite for the vault
/// file and the team vault, not a copy of it.
@Suite struct StorageBackendTests {
    static func create(_ location: String) throws -> UnlockedVault {
        try Vault.create(path: location, passphrase: SecureBytes(utf8: Fixtures.passphrase), kdf: .insecureForTesting, label: "default", actor: "tester")
    }

    /// `make test` must test PostgreSQL: a run that was told to and has no database fails
    /// rather than skipping it.
    @Test func postgresIsTestedWhenRequired() {
        if ProcessInfo.processInfo.environment["KISVAULT_REQUIRE_PG"] == "1" {
            #expect(Backend.pgURL != nil, "KISVAULT_REQUIRE_PG=1 but no KISVAULT_TEST_PG_URL: the PostgreSQL backend would go untested")
        }
    }

    @Test(arguments: Backend.available) func createOpenUnlockAndKeyslots(_ backend: Backend) throws {
        let dir = TemporaryDirectory()
        let location = backend.location(dir)
        let created = try Self.create(location)
        created.vault.close()
        #expect(throws: VaultError.self) { try Self.create(location) }
        let vault = try Vault.open(path: location)
        defer { vault.close() }
        #expect(vault.formatVersion == Schema.currentVersion)
        #expect(throws: VaultError.wrongPassphrase(keyslotsTried: 1)) { try vault.unlock(passphrase: SecureBytes(utf8: "nope")) }
        let unlocked = try vault.unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase))
        try unlocked.addKeyslot(label: "second", passphrase: SecureBytes(utf8: "other"), kdf: .insecureForTesting)
        #expect(throws: VaultError.keyslotExists(label: "second")) {
            try unlocked.addKeyslot(label: "second", passphrase: SecureBytes(utf8: "x"), kdf: .insecureForTesting)
        }
        #expect(try vault.keyslots().map(\.label) == ["default", "second"])
        _ = try vault.unlock(passphrase: SecureBytes(utf8: "other"))
        try unlocked.changePassphrase(label: "second", to: SecureBytes(utf8: "third"))
        #expect(throws: VaultError.self) { try vault.unlock(passphrase: SecureBytes(utf8: "other"), keyslot: "second") }
        _ = try vault.unlock(passphrase: SecureBytes(utf8: "third"), keyslot: "second")
        try unlocked.removeKeyslot(label: "default")
        #expect(throws: VaultError.lastKeyslot(label: "second")) { try unlocked.removeKeyslot(label: "second") }
        #expect(try vault.open(readOnly: location).keyslots().count == 1)
        #expect(vault.healthChecks().allSatisfy { $0.status != .fail }, "\(vault.healthChecks())")
    }

    @Test(arguments: Backend.available) func accountsInByteOrderWithTagsEditsAndRemoval(_ backend: Backend) throws {
        let dir = TemporaryDirectory()
        let vault = try Self.create(backend.location(dir))
        defer { vault.vault.close() }
        #expect(try vault.vault.accounts().isEmpty && vault.vault.accounts(tag: "even").isEmpty)
        // Byte order, as SQLite sorts: upper case before '_' before lower case.
        for (seed, name) in ["b", "_z", "B", "a.1", "A@x"].enumerated() {
            try vault.addAccount(Fixtures.account(name, seed: seed + 1, tags: seed.isMultiple(of: 2) ? ["even", "Z", "_1"] : []))
        }
        #expect(try vault.vault.accountNames() == ["A@x", "B", "_z", "a.1", "b"])
        #expect(try vault.vault.accountNames(tag: "even") == ["A@x", "B", "b"])
        let listed = try vault.vault.accounts()
        #expect(listed.map(\.name) == ["A@x", "B", "_z", "a.1", "b"])
        #expect(listed.map(\.tags) == [["Z", "_1", "even"], ["Z", "_1", "even"], [], [], ["Z", "_1", "even"]])
        #expect(listed.allSatisfy { $0.environment == .mock && !$0.id.isEmpty && !$0.createdAt.isEmpty && $0.secretsUpdatedAt == $0.createdAt })
        // Each as the lookup of one account (another statement) has it.
        #expect(try listed == listed.map { try vault.vault.account(named: $0.name) })
        #expect(try vault.vault.accounts(tag: "even").map(\.tags) == [["Z", "_1", "even"], ["Z", "_1", "even"], ["Z", "_1", "even"]])
        #expect(try vault.vault.accounts(tag: "nothing").isEmpty)
        #expect(throws: VaultError.accountExists(name: "b")) { try vault.addAccount(Fixtures.account("b", seed: 99)) }
        #expect(throws: VaultError.duplicateAppkey(existing: "b", adding: "c")) { try vault.addAccount(Fixtures.account("c", seed: 1)) }
        var changes = AccountChanges()
        changes.environment = .real
        changes.addTags = ["x", "y"]
        changes.removeTags = ["even"]
        changes.htsID = .some(SecureBytes(utf8: "myhts"))
        let edited = try vault.editAccount("b", changes)
        #expect(edited.environment == .real && edited.tags == ["Z", "_1", "x", "y"])
        #expect(try vault.secrets(of: "b").htsID?.utf8String() == "myhts")
        try vault.renameAccount("b", to: "bee")
        #expect(try vault.secrets(of: "bee").appkey.utf8String() == Fixtures.credentials(1).appkey)
        try vault.removeAccount("bee")
        #expect(throws: VaultError.accountNotFound(name: "bee")) { try vault.removeAccount("bee") }
        #expect(try vault.exportAccounts().count == 4)
        // An import is all or nothing.
        let good = ImportCandidate(location: "line 1", account: Fixtures.account("new", seed: 50))
        let clash = ImportCandidate(location: "line 2", account: Fixtures.account("newer", seed: 2))
        #expect(throws: VaultError.self) { try vault.importAccounts([good, clash], update: false, source: "f") }
        #expect(try !vault.vault.accountNames().contains("new"))
        let summary = try vault.importAccounts([good, ImportCandidate(location: "line 2", account: Fixtures.account("A@x", seed: 60))], update: true, source: "f")
        #expect(summary == ImportSummary(added: 1, updated: 1))
        #expect(try vault.secrets(of: "A@x").appkey.utf8String() == Fixtures.credentials(60).appkey)
        #expect(try vault.verifyAudit().isIntact)
        #expect(vault.secretChecks().allSatisfy { $0.status == .ok })
    }

    /// A claim made ahead of its request is renewed only while its claimer still holds
    /// the lease: one that ran out and was taken over stays the new holder's.
    @Test(arguments: Backend.available) func aClaimIsRenewedOnlyByItsHolder(_ backend: Backend) throws {
        let dir = TemporaryDirectory()
        let vault = try Self.create(backend.location(dir))
        defer { vault.vault.close() }
        try vault.addAccount(Fixtures.account("acct", seed: 7))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let claimed = try vault.withIssuance(account: "acct", kind: .token) { tx -> IssuanceSnapshot in
            try tx.claim(owner: "a", until: t0.addingTimeInterval(60), requestAt: t0)
            return tx.snapshot
        }
        var held = false
        try vault.withClaimed([claimed]) { tx in held = try tx.renewClaim(owner: "a", until: t0.addingTimeInterval(70), requestAt: t0.addingTimeInterval(10)) }
        var state = try vault.vault.issuanceSnapshot(account: "acct", kind: .token)
        #expect(held && state.leaseOwner == "a" && state.leaseExpiresAt == t0.addingTimeInterval(70) && state.lastRequestAt == t0.addingTimeInterval(10))
        // Taken over by "b" after it ran out: "a" renews nothing.
        try vault.withIssuance(account: "acct", kind: .token) { tx in
            try tx.claim(owner: "b", until: t0.addingTimeInterval(200), requestAt: t0.addingTimeInterval(140))
        }
        try vault.withClaimed([claimed]) { tx in held = try tx.renewClaim(owner: "a", until: t0.addingTimeInterval(210), requestAt: t0.addingTimeInterval(150)) }
        state = try vault.vault.issuanceSnapshot(account: "acct", kind: .token)
        #expect(!held && state.leaseOwner == "b" && state.leaseExpiresAt == t0.addingTimeInterval(200) && state.lastRequestAt == t0.addingTimeInterval(140))
    }

    @Test(arguments: Backend.available) func issuanceLeasesCredentialsAndRejection(_ backend: Backend) throws {
        let dir = TemporaryDirectory()
        let vault = try Self.create(backend.location(dir))
        defer { vault.vault.close() }
        try vault.addAccount(Fixtures.account("acct", seed: 7))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        // Claim, read the sealed app credentials in the same transaction, store, release.
        let app = try vault.withIssuance(account: "acct", kind: .token) { tx -> SealedAppCredentials in
            try tx.claim(owner: "me", until: now.addingTimeInterval(60), requestAt: now)
            return try tx.sealedAppCredentials()
        }
        #expect(try vault.openAppCredentials(app).appkey == Fixtures.credentials(7).appkey)
        let claimed = try vault.vault.issuanceSnapshot(account: "acct", kind: .token)
        #expect(claimed.leaseOwner == "me" && claimed.lastRequestAt == now)
        for text in ["first-token-value", "second-token-value"] {
            var value = text
            let sealed = value.withUTF8 { vault.sealCredential(UnsafeRawBufferPointer($0), for: claimed) }
            let stored = try vault.withClaimed([claimed]) { tx in
                try tx.store(sealed, times: CredentialTimes(issuedAt: now, expiresAt: now.addingTimeInterval(86_400)), releasingLeaseOf: "me")
                try tx.audit(action: "token.issue")
            }
            #expect(stored == 1)
        }
        let state = try vault.vault.issuanceSnapshot(account: "acct", kind: .token)
        #expect(state.leaseOwner == nil && state.current?.expiresAt == now.addingTimeInterval(86_400) && state.previous != nil)
        #expect(try vault.openCredential(account: "acct", kind: .token)?.0.utf8String() == "second-token-value")
        #expect(try vault.openCredential(account: "acct", kind: .token, slot: .previous)?.0.utf8String() == "first-token-value")
        #expect(try vault.openCredential(account: "acct", kind: .approval) == nil)
        // A dead token is dropped only while it is the stored one.
        let dropped = try vault.withIssuance(account: "acct", kind: .token) { try $0.discardCurrent(ifItIs: SecureBytes(utf8: "first-token-value")) }
        #expect(!dropped)
        #expect(try vault.withIssuance(account: "acct", kind: .token) { try $0.discardCurrent(ifItIs: SecureBytes(utf8: "second-token-value")) })
        #expect(try vault.openCredential(account: "acct", kind: .token) == nil)
        try vault.withIssuance(account: "acct", kind: .approval) { tx in
            try tx.markRejected(code: "EGW00105", message: "bad appkey")
            try tx.recordError("later")
        }
        let rejected = try vault.vault.issuanceSnapshots(kind: .approval)
        #expect(rejected.map(\.rejectedCode) == ["EGW00105"] && rejected.first?.lastError == "later")
        // New credentials forget everything tied to the old appkey.
        var changes = AccountChanges()
        changes.credentials = (SecureBytes(utf8: Fixtures.credentials(8).appkey), SecureBytes(utf8: Fixtures.credentials(8).appsecret))
        try vault.editAccount("acct", changes)
        #expect(try vault.vault.issuanceSnapshot(account: "acct", kind: .approval).rejectedCode == nil)
        #expect(try vault.openCredential(account: "acct", kind: .token, slot: .previous) == nil)
        #expect(vault.secretChecks().allSatisfy { $0.status == .ok }, "\(vault.secretChecks())")
    }

    /// Writers on separate connections (as separate processes or machines would be) never
    /// fork the audit chain or leave a gap.
    @Test(arguments: Backend.available) func concurrentWritersKeepOneChain(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let location = backend.location(dir)
        let first = try Self.create(location)
        defer { first.vault.close() }
        try first.addAccount(Fixtures.account("shared", seed: 3))
        let writers = try (0..<4).map { _ in try Vault.open(path: location, busyTimeout: 30).unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase)) }
        defer { for writer in writers { writer.vault.close() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, writer) in writers.enumerated() {
                group.addTask {
                    for round in 0..<15 { try writer.recordAudit(action: "test.write", account: "shared", detail: "\(index).\(round)") }
                }
            }
            try await group.waitForAll()
        }
        let verification = try first.verifyAudit()
        #expect(verification.isIntact, "\(verification.problems)")
        #expect(verification.rows == 2 + 60)
        #expect(try first.vault.auditRecords(account: "shared").count == 1 + 60)
    }
}

extension StorageBackendTests {
    /// A team vault sees whether a lease holder's database session is alive; a file
    /// cannot tell (the key manager then asks the kernel, for this host's processes).
    @Test(arguments: Backend.available) func leaseHoldersAreSeenAliveOrGone(_ backend: Backend) throws {
        let dir = TemporaryDirectory()
        let location = backend.location(dir)
        let holder = try Self.create(location)
        try holder.addAccount(Fixtures.account("acct", seed: 4))
        let owner = "machine-a:4242:beef"
        try holder.withIssuance(account: "acct", kind: .approval) { tx in
            try tx.claim(owner: owner, until: Date().addingTimeInterval(60), requestAt: Date())
        }
        let other = try Vault.open(path: location).unlock(passphrase: SecureBytes(utf8: Fixtures.passphrase))
        defer { other.vault.close() }
        func alive() throws -> Bool? { try other.withIssuance(account: "acct", kind: .approval) { try $0.leaseHolderAlive(owner) } }
        guard backend == .postgres else {
            #expect(try alive() == nil)
            holder.vault.close()
            return
        }
        #expect(try alive() == true)
        #expect(try other.withIssuance(account: "acct", kind: .approval) { try $0.leaseHolderAlive("machine-b:1:0") } == false)
        holder.vault.close()  // the holder's sessions end, as when it is killed
        var gone = false
        for _ in 0..<200 where !gone {
            gone = try alive() == false
            if !gone { usleep(10_000) }
        }
        #expect(gone, "the holder's presence outlived its session")
    }
}

extension Vault {
    /// The same location opened read-only.
    func open(readOnly location: String) throws -> Vault { try Vault.open(path: location, mode: .readOnly) }
}
