import Foundation
import KISAPI
import KISMock
import Testing

/// The mock's own fidelity to KIS-API.md.
@Suite struct KISMockBehaviourTests {
    @Test func tokenOncePerMinuteThenReusedForSixHours() async throws {
        try await withMock(retry: .none) { mock, client, accounts in
            let a = accounts[0]
            let first = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            do {
                _ = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
                Issue.record("expected EGW00133 within the minute")
            } catch let error as KISError {
                #expect(error.code == "EGW00133" && error.httpStatus == 403 && error.kind == .rateLimited)
            }
            try await mock.advance(seconds: 61)
            let again = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            #expect(again.token == first.token)
            #expect(abs(again.expiresAt.timeIntervalSince(first.expiresAt)) < 1)
            try await mock.advance(seconds: 6 * 3600)
            let fresh = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            #expect(fresh.token != first.token)
            // Another appkey is not limited by the first one's minute.
            _ = try await client.accessToken(environment: .mock, appkey: accounts[1].appkey, secret: accounts[1].appsecret, now: mock.now)
        }
    }

    @Test func revocationMakesTheTokenUnknown() async throws {
        try await withMock(retry: .none) { mock, client, accounts in
            let a = accounts[0]
            let token = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            try await client.revoke(environment: .mock, appkey: a.appkey, secret: a.appsecret, token: token.token)
            await #expect(throws: KISError.self) {
                try await client.revoke(environment: .mock, appkey: a.appkey, secret: a.appsecret, token: token.token)
            }
            try await mock.advance(seconds: 61)
            let next = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            #expect(next.token != token.token)
        }
    }

    @Test func perSecondLimits() async throws {
        try await withMock(retry: .none) { _, client, accounts in
            func burst(_ a: MockAccount, _ n: Int, _ env: KISEnvironment) async -> Int {
                await withTaskGroup(of: Bool.self) { group in
                    for _ in 0..<n {
                        group.addTask {
                            do { _ = try await client.approvalKey(environment: env, appkey: a.appkey, secret: a.appsecret); return false } catch let error as KISError {
                                return error.code == "EGW00201"
                            } catch { return false }
                        }
                    }
                    var refused = 0
                    for await r in group where r { refused += 1 }
                    return refused
                }
            }
            // Bursts well past the limits (2 and 20 a second) must see refusals, however
            // slowly a loaded machine sends them: 20 against 2, 200 against 20.
            #expect(await burst(accounts.first { $0.environment == "mock" }!, 20, .mock) >= 1)
            #expect(await burst(accounts.first { $0.environment == "real" }!, 200, .real) >= 1)
        }
    }

    @Test func environmentSeparation() async throws {
        try await withMock(configure: { $0.environment = "real" }, retry: .none) { _, client, accounts in
            let paper = accounts.first { $0.environment == "mock" }!
            let live = accounts.first { $0.environment == "real" }!
            _ = try await client.approvalKey(environment: .real, appkey: live.appkey, secret: live.appsecret)
            do {
                _ = try await client.approvalKey(environment: .real, appkey: paper.appkey, secret: paper.appsecret)
                Issue.record("a paper appkey must be refused by the real host")
            } catch let error as KISError {
                #expect(error.code == "EGW00103" && error.kind == .credentialsRejected)
            }
        }
    }

    @Test func statsCountEveryRequestAndResetClears() async throws {
        try await withMock(configure: { $0.failRate = 0.5; $0.faults = [.html, .empty] }, retry: .none) { mock, client, accounts in
            for a in accounts { _ = try? await client.approvalKey(environment: a.environment == "real" ? .real : .mock, appkey: a.appkey, secret: a.appsecret) }
            let stats = mock.stats()
            #expect((stats["requests"] as! [String: Int])["/oauth2/Approval"] == accounts.count)
            let outcomes = stats["outcomes"] as! [String: Int]
            #expect(outcomes.values.reduce(0, +) == accounts.count)
            #expect((stats["per_account"] as! [String: [String: Int]]).count >= 1)
            try await mock.hook("/__mock/reset")
            #expect(mock.requests("/oauth2/Approval") == 0)
        }
    }

    @Test func generatedAccountsHaveKISShapesAndRoundTrip() throws {
        let accounts = MockAccounts.generate(count: 100, environment: "real")
        #expect(accounts.allSatisfy { $0.appkey.count == 36 && $0.appsecret.count == 180 })
        #expect(Set(accounts.map(\.appkey)).count == 100)
        #expect(MockAccounts.generate(count: 3, environment: "real") == Array(accounts.prefix(3)))
        let dir = NSTemporaryDirectory() + "kis-mock-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try MockAccounts.csv(accounts).write(toFile: dir + "/a.csv", atomically: true, encoding: .utf8)
        try MockAccounts.json(accounts).write(toFile: dir + "/a.json", atomically: true, encoding: .utf8)
        #expect(try MockAccounts.load(path: dir + "/a.csv") == accounts)
        #expect(try MockAccounts.load(path: dir + "/a.json") == accounts)
    }

    @Test func everyTokenLivesUntilItsExpiryOrRevocation() async throws {
        try await withMock(configure: { $0.expiresInQuirk = true }) { mock, client, accounts in
            let a = accounts[0], b = accounts[1]
            let first = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            try await mock.advance(seconds: 3600)
            // Handed back within six hours; with the quirk, expires_in claims a full day,
            // and the client keeps the expiry from access_token_token_expired.
            let again = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            #expect(again.token == first.token && again.expiresAt == first.expiresAt)
            try await mock.advance(seconds: 6 * 3600)
            let second = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            #expect(second.token != first.token)
            #expect(mock.isValid(appkey: a.appkey, token: first.token) && mock.isValid(appkey: a.appkey, token: second.token))
            // Another appkey's token, an unknown one, and a revoked one are EGW00121.
            await #expect(throws: KISError.self) { try await client.revoke(environment: .mock, appkey: b.appkey, secret: b.appsecret, token: first.token) }
            try await client.revoke(environment: .mock, appkey: a.appkey, secret: a.appsecret, token: first.token)
            do {
                try await client.revoke(environment: .mock, appkey: a.appkey, secret: a.appsecret, token: first.token)
                Issue.record("a revoked token was revoked again")
            } catch let error as KISError {
                #expect(error.code == "EGW00121")
            } catch {
                Issue.record("\(error)")
            }
            #expect(!mock.isValid(appkey: a.appkey, token: first.token) && mock.isValid(appkey: a.appkey, token: second.token))
            try await mock.advance(seconds: 86_400)
            #expect(!mock.isValid(appkey: a.appkey, token: second.token))
        }
    }
}
