import Foundation
import HummingbirdWSClient
import KISMock
import Logging
import NIOWebSocket
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The mock's data endpoints, and `token check`: a token kisvault hands out works where it
/// is used, and one KIS no longer takes is found and replaced.
@Suite struct CLIDataEndpointTests {
    /// One data call to the mock, as a KIS client makes it.
    static func call(_ mock: KISMockServer, _ path: String, method: String = "GET", account: MockAccount, token: String? = nil,
                     trID: String? = "FHKST01010100", body: String? = nil) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: mock.baseURL + path)!)
        request.httpMethod = method
        request.setValue("application/json; charset=utf-8", forHTTPHeaderField: "content-type")
        request.setValue(account.appkey, forHTTPHeaderField: "appkey")
        request.setValue(account.appsecret, forHTTPHeaderField: "appsecret")
        if let token { request.setValue("Bearer " + token, forHTTPHeaderField: "authorization") }
        if let trID { request.setValue(trID, forHTTPHeaderField: "tr_id") }
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    static func quote(_ mock: KISMockServer, _ account: MockAccount, _ token: String) async throws -> (status: Int, json: [String: Any]) {
        try await call(mock, "/uapi/domestic-stock/v1/quotations/inquire-price?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930", account: account, token: token)
    }

    @Test func theMockAnswersDataCallsAsKISDoes() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 2)
        let (a, b) = (accounts[0], accounts[1])
        let tokenA = try await box.runAsync(["token", "get", a.name]).stdout.trimmingCharacters(in: .newlines)
        let tokenB = try await box.runAsync(["token", "get", b.name]).stdout.trimmingCharacters(in: .newlines)
        let ok = try await Self.quote(mock, a, tokenA)
        #expect(ok.status == 200 && ok.json["rt_cd"] as? String == "0")
        let price = (ok.json["output"] as? [String: String])?["stck_prpr"]
        let again = (try await Self.quote(mock, a, tokenA).json["output"] as? [String: String])?["stck_prpr"]
        #expect(price != nil && price == again, "deterministic")
        // Another appkey's token, none, a made-up one, the wrong tr_id: KIS's data-shaped errors.
        #expect(try await Self.quote(mock, a, tokenB).json["msg_cd"] as? String == "EGW00121")
        #expect(try await Self.quote(mock, a, "eyJ.not.ours").json["msg_cd"] as? String == "EGW00121")
        #expect(try await Self.call(mock, "/uapi/domestic-stock/v1/quotations/inquire-price?FID_INPUT_ISCD=005930", account: a).json["msg_cd"] as? String == "EGW00122")
        #expect(try await Self.call(mock, "/uapi/domestic-stock/v1/quotations/inquire-price?FID_INPUT_ISCD=005930", account: a, token: tokenA, trID: "X")
            .json["msg_cd"] as? String == "OPSQ0002")
        // hashkey: appkey and appsecret in headers, the order body in, HASH out.
        let hash = try await Self.call(mock, "/uapi/hashkey", method: "POST", account: a, trID: nil, body: #"{"CANO": "50000000", "PDNO": "005930"}"#)
        #expect(hash.status == 200 && (hash.json["HASH"] as? String)?.count == 64)
        // Tokens live as long as KIS's: after the 6-hour mark, --revoke-old retires the old
        // one, which the data endpoint then refuses, and the new one works.
        let later: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "21660"]
        mock.advanceClock(seconds: 21_660)
        #expect(try await Self.quote(mock, a, tokenA).json["rt_cd"] as? String == "0", "still valid after 6 hours")
        let rotated = try await box.runAsync(["token", "rotate", a.name, "--revoke-old"], env: later)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let newA = try await box.runAsync(["token", "get", a.name], env: later).stdout.trimmingCharacters(in: .newlines)
        #expect(newA != tokenA)
        #expect(try await Self.quote(mock, a, tokenA).json["msg_cd"] as? String == "EGW00121", "the revoked old token")
        #expect(try await Self.quote(mock, a, newA).json["rt_cd"] as? String == "0")
        // Without --revoke-old the old token stays valid, as at KIS.
        mock.advanceClock(seconds: 21_660)
        let laterStill: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "43320"]
        #expect(try await box.runAsync(["token", "rotate", b.name], env: laterStill).status == 0)
        #expect(try await Self.quote(mock, b, tokenB).json["rt_cd"] as? String == "0")
        // Expired: EGW00123.
        mock.advanceClock(seconds: 86_400)
        #expect(try await Self.quote(mock, a, newA).json["msg_cd"] as? String == "EGW00123")
        // Over the per-second limit (20 on the real host): EGW00201, HTTP 500.
        let burst = try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<40 { group.addTask { try await Self.quote(mock, b, tokenB).json["msg_cd"] as? String } }
            return try await group.reduce(into: [String?]()) { $0.append($1) }
        }
        #expect(burst.contains("EGW00201"))
        let requests = mock.stats()["requests"] as? [String: Int]
        #expect(requests?["/uapi/hashkey"] == 1 && (requests?["/uapi/domestic-stock/v1/quotations/inquire-price"] ?? 0) >= 50)
        await mock.stop()
    }

    @Test func tokenCheckFindsADeadTokenAndReissuesOnce() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 1)
        let a = accounts[0]
        let none = try await box.runAsync(["token", "check", a.name])
        #expect(none.status == 4 && none.stderr.contains("no access token is stored for '\(a.name)'"), "\(none.stderr)")
        let nosuch = try await box.runAsync(["token", "check", "nosuch"], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(nosuch.status == 4, "no such account, before any passphrase: \(nosuch.stderr)")
        let token = try await box.runAsync(["token", "get", a.name]).stdout.trimmingCharacters(in: .newlines)
        let ok = try await box.runAsync(["token", "check", a.name])
        #expect(ok.status == 0 && ok.stdout == "\(a.name): ok\n", "\(ok.stdout) \(ok.stderr)")
        // Revoked behind kisvault's back (another program, the KIS site): invalid, exit 5,
        // nothing issued; then --reissue replaces it with one issuance, checked too.
        #expect(mock.revoke(appkey: a.appkey, token: token))
        let issued = mock.requests("/oauth2/tokenP")
        let dead = try await box.runAsync(["token", "check", a.name, "--format", "json"])
        #expect(dead.status == 5 && dead.stdout.contains(#""state" : "invalid""#) && dead.stdout.contains("EGW00121"), "\(dead.stdout)")
        #expect(mock.requests("/oauth2/tokenP") == issued)
        let later: [String: String?] = ["KISVAULT_CLOCK_OFFSET_SECONDS": "61"]
        mock.advanceClock(seconds: 61)
        let fixed = try await box.runAsync(["token", "check", a.name, "--reissue"], env: later)
        #expect(fixed.status == 0 && fixed.stdout == "\(a.name): reissued, ok\n", "\(fixed.stdout) \(fixed.stderr)")
        #expect(mock.requests("/oauth2/tokenP") == issued + 1)
        let fresh = try await box.runAsync(["token", "get", a.name], env: later).stdout.trimmingCharacters(in: .newlines)
        #expect(fresh != token && mock.isValid(appkey: a.appkey, token: fresh))
        // Past its stored end: expired, without asking KIS.
        let quotes = mock.requests("/uapi/domestic-stock/v1/quotations/inquire-price")
        let expired = try await box.runAsync(["token", "check", a.name], env: ["KISVAULT_CLOCK_OFFSET_SECONDS": "90000"])
        #expect(expired.status == 5 && expired.stdout == "\(a.name): expired\n", "\(expired.stdout) \(expired.stderr)")
        #expect(mock.requests("/uapi/domestic-stock/v1/quotations/inquire-price") == quotes)
        await mock.stop()
    }

    /// `approval check`: ok after `approval issue`, in-use while a bot holds the session,
    /// rejected for a key KIS does not know, unreachable with nothing listening.
    @Test func approvalCheckProvesTheKeyWhereItIsUsed() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 2)
        box.environment["KISVAULT_KIS_WS_URL"] = try #require(mock.webSocketURL)
        let a = accounts[0]
        let none = try await box.runAsync(["approval", "check", a.name])
        #expect(none.status == 4 && none.stdout == "\(a.name): none (no approval key stored)\n", "\(none.stdout) \(none.stderr)")
        #expect(try await box.runAsync(["approval", "issue", "--all"]).status == 0)
        let ok = try await box.runAsync(["approval", "check", a.name])
        #expect(ok.status == 0 && ok.stdout == "\(a.name): ok\n", "\(ok.stdout) \(ok.stderr)")
        // The server ends its side of the session a moment after the client's close.
        let closed = try await CLIAgentTests.waitFor { (mock.stats()["websocket"] as? [String: Int])?["sessions_open"] == 0 }
        let stats = mock.stats()["websocket"] as? [String: Int]
        #expect(closed && stats?["OPSP0000"] == 1 && stats?["OPSP0001"] == 1, "registered, unregistered, closed: \(stats ?? [:])")
        let all = try await box.runAsync(["approval", "check", "--all", "--format", "json"])
        #expect(all.status == 0 && all.stdout.components(separatedBy: #""state" : "ok""#).count - 1 == 2, "\(all.stdout)")
        // A bot holds a's session: in-use, exit 5; b is still ok: exit 7 for the two.
        let key = try await box.runAsync(["approval", "get", a.name]).stdout.trimmingCharacters(in: .newlines)
        let holding = AsyncStream<Void>.makeStream(), release = AsyncStream<Void>.makeStream()
        let url = try #require(mock.webSocketURL)
        let bot = Task { try await CLIWebSocketBot.hold(url: url, key: key, holding: holding.continuation, release: release.stream) }
        for await _ in holding.stream { break }
        let busy = try await box.runAsync(["approval", "check", a.name])
        #expect(busy.status == 5 && busy.stdout.hasPrefix("\(a.name): in-use"), "\(busy.stdout) \(busy.stderr)")
        #expect(try await box.runAsync(["approval", "check", a.name, accounts[1].name]).status == 7)
        release.continuation.yield()
        _ = try await bot.value
        // A key KIS no longer knows (the mock forgot every key): rejected with its code.
        var reset = URLRequest(url: URL(string: mock.baseURL + "/__mock/reset")!)
        reset.httpMethod = "POST"
        _ = try await URLSession.shared.data(for: reset)
        let rejected = try await box.runAsync(["approval", "check", a.name])
        #expect(rejected.status == 5 && rejected.stdout.contains("rejected (OPSP0011"), "\(rejected.stdout) \(rejected.stderr)")
        // Nothing listening there: unreachable, exit 6, within the timeout.
        let down = try await box.runAsync(["approval", "check", a.name, "--timeout", "3s"], env: ["KISVAULT_KIS_WS_URL": "ws://127.0.0.1:1"])
        #expect(down.status == 6 && down.stdout.hasPrefix("\(a.name): unreachable"), "\(down.stdout) \(down.stderr)")
        // A ws:// URL off loopback is refused before anything is sent.
        let plain = try await box.runAsync(["approval", "check", a.name], env: ["KISVAULT_KIS_WS_URL": "ws://example.com:21000"])
        #expect(plain.status == 2, "\(plain.stdout) \(plain.stderr)")
        await mock.stop()
    }
}

/// A bot that holds one appkey's WebSocket session until told to let go.
enum CLIWebSocketBot {
    static func hold(url: String, key: String, holding: AsyncStream<Void>.Continuation, release: AsyncStream<Void>) async throws {
        var logger = Logger(label: "bot")
        logger.logLevel = .critical
        try await WebSocketClient.connect(url: url + "/tryitout/H0STCNT0", logger: logger) { inbound, outbound, _ in
            try await outbound.write(.text(#"{"header": {"approval_key": "\#(key)", "custtype": "P", "tr_type": "1", "content-type": "utf-8"}, "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}"#))
            var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
            _ = try await messages.next()
            holding.yield()
            for await _ in release { break }
            try await outbound.close(.normalClosure, reason: nil)
        }
    }
}
