import Foundation
import HummingbirdWSClient
@testable import KISAPI
import KISMock
import Logging
import NIOWebSocket
import Testing

/// kis-mock's WebSocket, and the client side kisvault uses to prove a key
/// (`KISWebSocketCheck`): KIS's acknowledgements and refusals, one session per appkey,
/// 41 registrations, PINGPONG and data frames, and a server that survives many sessions
/// and frames that are not KIS's protocol.
@Suite struct MockWebSocketTests {
    static func approvalKey(_ client: KISClient, _ account: MockAccount) async throws -> String {
        try await client.approvalKey(environment: account.environment == "real" ? .real : .mock, appkey: account.appkey, secret: account.appsecret).key
    }

    static func frame(_ key: String, trType: String = "1", trID: String = "H0STCNT0", trKey: String = "005930") -> String {
        #"{"header": {"approval_key": "\#(key)", "custtype": "P", "tr_type": "\#(trType)", "content-type": "utf-8"}, "body": {"input": {"tr_id": "\#(trID)", "tr_key": "\#(trKey)"}}}"#
    }

    /// Opens a session at `url`, sends `frames` one by one, and collects what the server
    /// sends back until it closes or `until` says enough.
    static func converse(_ url: String, _ frames: [String], until: @escaping @Sendable ([String]) -> Bool) async throws -> [String] {
        let received = Received()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        try await WebSocketClient.connect(url: url + "/tryitout/H0STCNT0", logger: logger) { inbound, outbound, _ in
            for frame in frames { try await outbound.write(.text(frame)) }
            for try await message in inbound.messages(maxSize: 1 << 20) {
                if case .text(let text) = message { received.append(text) }
                if until(received.all) { break }
            }
            try? await outbound.close(.normalClosure, reason: nil)
        }
        return received.all
    }

    final class Received: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func append(_ text: String) { lock.withLock { items.append(text) } }
        var all: [String] { lock.withLock { items } }
    }

    static func codes(_ frames: [String]) -> [String] {
        frames.compactMap { text in
            ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]).flatMap { ($0["body"] as? [String: Any])?["msg_cd"] as? String }
        }
    }

    @Test func subscribeAcknowledgedWithDataFramesThenRefusalsAsKISAnswers() async throws {
        try await withMock(configure: { $0.webSocketPingSeconds = 0.2 }) { mock, client, accounts in
            let url = try #require(mock.webSocketURL)
            let key = try await Self.approvalKey(client, accounts[0])
            let frames = try await Self.converse(url, [Self.frame(key)]) { got in
                got.contains { $0.hasPrefix("0|H0STCNT0|001|005930^") } && got.contains { $0.contains("PINGPONG") }
            }
            #expect(Self.codes(frames).first == "OPSP0000", "\(frames)")
            #expect(frames.first?.contains("SUBSCRIBE SUCCESS") == true && frames.first?.contains(#""iv""#) == true)
            // An unknown key, and 42 registrations in one session.
            let unknown = try await Self.converse(url, [Self.frame(String(repeating: "k", count: 286))]) { _ in false }
            #expect(Self.codes(unknown) == ["OPSP0011"], "\(unknown)")
            let many = (0..<42).map { Self.frame(key, trKey: String(format: "%06d", $0)) }
            let answers = try await Self.converse(url, many) { Self.codes($0).count >= 42 }
            #expect(Self.codes(answers).filter { $0 == "OPSP0000" }.count == 41 && Self.codes(answers).last == "OPSP0008")
            // Another appkey's key inside a session opened with this one: refused, and the
            // session keeps its own registrations.
            let other = try await Self.approvalKey(client, accounts[1])
            let mixed = try await Self.converse(url, [Self.frame(key, trKey: "000660"), Self.frame(other)]) { Self.codes($0).count >= 2 }
            #expect(Self.codes(mixed) == ["OPSP0000", "OPSP0011"], "\(mixed)")
            #expect(KISWebSocketCheck.frame(approvalKey: key, register: true).contains(#""tr_type":"1""#))
        }
    }

    @Test func oneSessionPerAppkeyAndTheCheckSaysSo() async throws {
        try await withMock { mock, client, accounts in
            let url = try #require(mock.webSocketURL)
            let key = try await Self.approvalKey(client, accounts[0])
            #expect(await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: 5) == .ok)
            // A bot holds the appkey's session: the check is told "in use" and holds nothing.
            let holding = AsyncStream<Void>.makeStream()
            let release = AsyncStream<Void>.makeStream()
            let bot = Task {
                var logger = Logger(label: "bot")
                logger.logLevel = .critical
                try await WebSocketClient.connect(url: url + "/tryitout/H0STCNT0", logger: logger) { inbound, outbound, _ in
                    try await outbound.write(.text(Self.frame(key)))
                    var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                    _ = try await messages.next()
                    holding.continuation.yield()
                    for await _ in release.stream { break }
                    try await outbound.close(.normalClosure, reason: nil)
                }
            }
            for await _ in holding.stream { break }
            #expect(await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: 5) == .inUse)
            release.continuation.yield()
            _ = try await bot.value
            // Released when the bot closes: ok again (the server's close races the check's
            // connect, so a few tries).
            var again = KISWebSocketCheck.Outcome.inUse
            for _ in 0..<50 where again == .inUse {
                again = await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: 5)
                if again == .inUse { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(again == .ok)
            // Expired on the mock's clock: rejected with KIS's code.
            mock.advanceClock(seconds: 86_401)
            guard case .rejected(let code, _) = await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: 5) else {
                Issue.record("an expired key must be rejected")
                return
            }
            #expect(code == "OPSP0011")
            // Nothing listening: unreachable, promptly.
            guard case .unreachable = await KISWebSocketCheck.check(url: "ws://127.0.0.1:1", approvalKey: key, timeout: 5) else {
                Issue.record("a closed port must be unreachable")
                return
            }
        }
    }

    @Test func survivesTwoHundredSessionsAndMalformedFrames() async throws {
        try await withMock(accounts: 100) { mock, client, accounts in
            let url = try #require(mock.webSocketURL)
            var keys: [String] = []
            for account in accounts { keys.append(try await Self.approvalKey(client, account)) }
            #expect(keys.count == 200)
            let outcomes = await withTaskGroup(of: KISWebSocketCheck.Outcome.self) { group in
                for key in keys { group.addTask { await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: 30) } }
                return await group.reduce(into: [KISWebSocketCheck.Outcome]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .ok }.count == 200, "\(outcomes.filter { $0 != .ok }.prefix(3))")
            // Garbage, a header without a key, an oversized tr_key: each answered, and after
            // eight such frames the session is closed.
            let garbage = ["not json", "{}", #"{"header": {}}"#, Self.frame(keys[0], trKey: String(repeating: "9", count: 40)),
                           "[1,2,3]", "\u{0}\u{1}", #"{"header": {"approval_key": 5}}"#, "{", "more"]
            let answers = try await Self.converse(url, garbage) { _ in false }
            #expect(Self.codes(answers).count == 8 && Self.codes(answers).allSatisfy { $0 == "OPSP9999" }, "\(answers)")
            // A frame over the limit closes the session; the server carries on.
            let huge = String(repeating: "x", count: 64 * 1024)
            _ = try? await Self.converse(url, [huge]) { _ in false }
            #expect(await KISWebSocketCheck.check(url: url, approvalKey: keys[1], timeout: 5) == .ok)
            let stats = mock.stats()["websocket"] as? [String: Int]
            #expect((stats?["sessions_opened"] ?? 0) >= 203 && (stats?["malformed"] ?? 0) >= 8 && stats?["OPSP0000"] ?? 0 >= 201)
        }
    }
}

extension MockWebSocketTests {
    /// The hostile-WebSocket class of issue 25: an answer for another tr_id is not the
    /// registration's, "already in use" in the text of another code is not OPSP8996, and a
    /// code not in KIS's shape is malformed, never ok.
    @Test func theRegistrationsAnswerIsDecidedByItsCode() {
        func frame(_ trID: String, _ rt: String, _ code: String, _ message: String) -> String {
            #"{"header": {"tr_id": "\#(trID)"}, "body": {"rt_cd": "\#(rt)", "msg_cd": "\#(code)", "msg1": "\#(message)"}}"#
        }
        #expect(KISWebSocketCheck.outcome(of: frame("H0STCNT0", "0", "OPSP0000", "SUBSCRIBE SUCCESS")) == .ok)
        #expect(KISWebSocketCheck.outcome(of: frame("H0STASP0", "0", "OPSP0000", "SUBSCRIBE SUCCESS")) == nil, "another tr_id's answer")
        #expect(KISWebSocketCheck.outcome(of: frame("PINGPONG", "0", "", "")) == nil)
        #expect(KISWebSocketCheck.outcome(of: frame("H0STCNT0", "9", "OPSP8996", "ALREADY IN USE appkey")) == .inUse)
        #expect(KISWebSocketCheck.outcome(of: frame("H0STCNT0", "0", "OPSP0000", "already in use")) == .ok, "the text decides nothing")
        #expect(KISWebSocketCheck.outcome(of: frame("H0STCNT0", "9", "OPSP0011", "ALREADY IN USE? no: invalid approval")) == .rejected(code: "OPSP0011", message: "ALREADY IN USE? no: invalid approval"))
        #expect(KISWebSocketCheck.outcome(of: frame("H0STCNT0", "0", "OK <b>", "SUBSCRIBE SUCCESS")) == .rejected(code: "malformed", message: "the answer to the registration carries no code in KIS's shape"))
        #expect(KISWebSocketCheck.outcome(of: frame("", "9", "OPSP0011", "invalid approval : NOT FOUND")) == .rejected(code: "OPSP0011", message: "invalid approval : NOT FOUND"))
    }
}
