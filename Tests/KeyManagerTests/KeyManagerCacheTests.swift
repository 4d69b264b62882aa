import Foundation
import KISAPI
import KISMock
import KeyManager
import GRDB
import Testing
import VaultCrypto
import VaultStore

@Suite struct KeyManagerCacheTests {
    @Test func cacheHitsMakeNoRequest() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager()
        let name = f.accounts[0].name
        let first = try await m.get(account: name, kind: .approval, minTTL: 600)
        #expect(!first.fromCache && first.value.count == 286)
        for _ in 0..<5 {
            let again = try await m.get(account: name, kind: .approval, minTTL: 600)
            #expect(again.fromCache && again.value.constantTimeEquals(first.value))
        }
        let token = try await m.get(account: name, kind: .token, minTTL: 600)
        #expect(try await m.get(account: name, kind: .token, minTTL: 600).value.constantTimeEquals(token.value))
        #expect(f.requests("/oauth2/Approval") == 1)
        #expect(f.requests("/oauth2/tokenP") == 1)
        // A fresh manager (a new process) reads the same stored credential.
        #expect(try await f.manager(separateConnection: true).get(account: name, kind: .token, minTTL: 600).fromCache)
        await m.client.shutdown()
        await f.close()
    }

    @Test func expiryAndMinTTLCauseReissue() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager()
        let name = f.accounts[1].name
        let key = try await m.get(account: name, kind: .approval, minTTL: 600)
        try await f.advance(23 * 3600)
        #expect(try await m.get(account: name, kind: .approval, minTTL: 600).fromCache)
        let renewed = try await m.get(account: name, kind: .approval, minTTL: 3600 + 60)
        #expect(!renewed.fromCache && !renewed.value.constantTimeEquals(key.value))
        let token = try await m.get(account: name, kind: .token, minTTL: 600)
        try await f.advance(24 * 3600 + 1)
        let next = try await m.get(account: name, kind: .token, minTTL: 600)
        #expect(!next.fromCache && !next.value.constantTimeEquals(token.value))
        #expect(f.requests("/oauth2/Approval") == 2)
        #expect(f.requests("/oauth2/tokenP") == 2)
        let audit = try f.vault.vault.auditRecords(account: name).map(\.action)
        #expect(audit.filter { $0 == "approval.issue" }.count == 2 && audit.filter { $0 == "token.issue" }.count == 2)
        await m.client.shutdown()
        await f.close()
    }

    @Test func neverProvokesTheOnceAMinuteLimit() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager(wait: false)
        let name = f.accounts[2].name
        _ = try await m.rotate(account: name, kind: .token)
        do {
            _ = try await m.rotate(account: name, kind: .token)
            Issue.record("a second token within the minute must wait")
        } catch let error as KeyManagerError {
            guard case .mustWait(let account, let seconds) = error else { Issue.record("\(error)"); return }
            #expect(account == name && (55...60).contains(seconds))
        }
        let stats = f.stats()
        #expect(((stats["requests"] as! [String: Int])["/oauth2/tokenP"]) == 1)
        #expect((stats["outcomes"] as! [String: Int])["EGW00133"] == nil)
        // Once the minute has passed (both clocks), rotation goes through and KIS hands back
        // the same token, as it does within six hours.
        try await f.advance(61)
        let again = try await m.rotate(account: name, kind: .token)
        #expect(!again.fromCache)
        await m.client.shutdown()
        await f.close()
    }

    @Test func kisRefusalEGW00133IsWaitedOutOnce() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager(tokenInterval: 0.2)
        try await f.hook("/__mock/next-error", json: #"{"code": "EGW00133", "status": 403, "count": 1, "path": "/oauth2/tokenP"}"#)
        let token = try await m.get(account: f.accounts[3].name, kind: .token, minTTL: 600)
        #expect(!token.fromCache)
        #expect(f.requests("/oauth2/tokenP") == 2)
        try await f.hook("/__mock/next-error", json: #"{"code": "EGW00133", "status": 403, "count": 5, "path": "/oauth2/tokenP"}"#)
        await #expect(throws: KeyManagerError.self) { try await m.get(account: f.accounts[4].name, kind: .token, minTTL: 600) }
        await m.client.shutdown()
        await f.close()
    }

    @Test func rejectedCredentialsAreNotRetriedUntilEdited() async throws {
        let f = try await ManagerFixture.make()
        let name = f.accounts[0].name
        var wrong = AccountChanges()
        let good = f.accounts[0]
        wrong.credentials = (SecureBytes(utf8: good.appkey), SecureBytes(utf8: String(good.appsecret.dropLast()) + "X"))
        try f.vault.editAccount(name, wrong)
        let m = try f.manager()
        do {
            _ = try await m.get(account: name, kind: .approval, minTTL: 600)
            Issue.record("expected EGW00105")
        } catch let error as KeyManagerError {
            #expect(error.code == "EGW00105")
            #expect(!error.description.contains(good.appsecret) && !error.description.contains(good.appkey))
        }
        do {
            _ = try await m.get(account: name, kind: .approval, minTTL: 600)
            Issue.record("expected the earlier rejection")
        } catch let error as KeyManagerError {
            guard case .previouslyRejected(_, let code, _) = error else { Issue.record("\(error)"); return }
            #expect(code == "EGW00105")
        }
        #expect(f.requests("/oauth2/Approval") == 1)
        #expect(try f.vault.vault.issuanceSnapshot(account: name, kind: .approval).rejectedCode == "EGW00105")
        var fixed = AccountChanges()
        fixed.credentials = (SecureBytes(utf8: good.appkey), SecureBytes(utf8: good.appsecret))
        try f.vault.editAccount(name, fixed)
        #expect(try f.vault.vault.issuanceSnapshot(account: name, kind: .approval).rejectedCode == nil)
        _ = try await m.get(account: name, kind: .approval, minTTL: 600)
        await m.client.shutdown()
        await f.close()
    }

    @Test func singleFlightAcrossManagers() async throws {
        let f = try await ManagerFixture.make()
        let name = f.accounts[5].name
        let managers = try (0..<10).map { _ in try f.manager(separateConnection: true) }
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for m in managers {
                group.addTask { try await m.get(account: name, kind: .token, minTTL: 600).value.utf8String() }
            }
            var all: [String] = []
            for try await t in group { all.append(t) }
            return all
        }
        #expect(Set(tokens).count == 1 && tokens.count == 10)
        #expect(f.requests("/oauth2/tokenP") == 1)
        for m in managers { await m.client.shutdown() }
        await f.close()
    }

    @Test func revokeAndRotateWithRevokeOld() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager(tokenInterval: 0)
        let name = f.accounts[6].name
        _ = try await m.get(account: name, kind: .token, minTTL: 600)
        try await m.revoke(account: name)
        #expect(try f.vault.openCredential(account: name, kind: .token) == nil)
        #expect(f.requests("/oauth2/revokeP") == 1)
        await #expect(throws: KeyManagerError.self) { try await m.revoke(account: name) }
        try await f.advance(61)
        let first = try await m.get(account: name, kind: .token, minTTL: 600)
        try await f.advance(7 * 3600)
        // As at KIS, the old token stays valid past the 6-hour mark until revoked.
        let appkey = f.accounts[6].appkey
        #expect(f.mock.isValid(appkey: appkey, token: first.value.utf8String()))
        let second = try await m.rotate(account: name, kind: .token, revokeOld: true)
        #expect(!second.value.constantTimeEquals(first.value))
        #expect(f.requests("/oauth2/revokeP") == 2)
        // --revoke-old really revoked the old one at KIS, and only it.
        #expect(!f.mock.isValid(appkey: appkey, token: first.value.utf8String()))
        #expect(f.mock.isValid(appkey: appkey, token: second.value.utf8String()))
        #expect(try f.vault.openCredential(account: name, kind: .token, slot: .previous) == nil)
        await m.client.shutdown()
        await f.close()
    }

    @Test func tamperedAccountFieldIsAVaultErrorNotAKISOne() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager()
        let a = f.accounts[0].name, b = f.accounts[1].name
        let db = try GRDBHelper.queue(f.dir + "/vault.db")
        try await db.write { try $0.execute(sql: "UPDATE accounts SET appsecret = (SELECT appsecret FROM accounts WHERE name = '\(a)') WHERE name = '\(b)'") }
        await #expect(throws: VaultError.fieldAuthenticationFailed(account: b, field: "appsecret")) {
            try await m.get(account: b, kind: .approval, minTTL: 600)
        }
        let snapshot = try f.vault.vault.issuanceSnapshot(account: b, kind: .approval)
        #expect(snapshot.leaseOwner == nil && snapshot.rejectedCode == nil)
        let bulk = try await m.bulk(accounts: [a, b], options: BulkOptions(kind: .token, mode: .issue))
        #expect(bulk[0].status == .issued && bulk[1].status == .failed && bulk[1].errorCode == "vault")
        #expect(try f.vault.vault.issuanceSnapshot(account: b, kind: .token).leaseOwner == nil)
        #expect(f.requests("/oauth2/Approval") == 0)
        await m.client.shutdown()
        await f.close()
    }

    @Test func tamperedCredentialFailsToAuthenticate() async throws {
        let f = try await ManagerFixture.make()
        let m = try f.manager()
        _ = try await m.get(account: f.accounts[0].name, kind: .approval, minTTL: 600)
        _ = try await m.get(account: f.accounts[1].name, kind: .approval, minTTL: 600)
        let db = try GRDBHelper.queue(f.dir + "/vault.db")
        try await db.write { try $0.execute(sql: """
            UPDATE credentials SET value = (SELECT c.value FROM credentials c JOIN accounts a ON a.id = c.account_id WHERE a.name = '\(f.accounts[0].name)')
            WHERE account_id = (SELECT id FROM accounts WHERE name = '\(f.accounts[1].name)')
            """) }
        await #expect(throws: VaultError.fieldAuthenticationFailed(account: f.accounts[1].name, field: "approval current")) {
            try await m.get(account: f.accounts[1].name, kind: .approval, minTTL: 600)
        }
        let check = f.vault.secretChecks().first { $0.check == "credentials" }
        #expect(check?.status == .fail && check?.detail.contains("\(f.accounts[1].name) (approval current)") == true)
        #expect(check?.detail.contains("\(f.accounts[0].name) (") == false)
        await m.client.shutdown()
        await f.close()
    }
}
