import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

/// KIS's real-time WebSocket as kis-mock plays it (docs/KIS-API.md, "The WebSocket
/// session"): JSON subscribe frames carrying an approval key, KIS's JSON acknowledgements,
/// one session per appkey, at most 41 registrations, PINGPONG, and pipe-delimited data
/// frames for what is registered. Every frame is bounded; a client that keeps sending
/// what is not KIS's protocol is answered, counted, and after a few such frames closed.
struct MockWebSocket: Sendable {
    let state: MockState

    /// The largest frame or message read (KIS's subscribe frame is a few hundred bytes).
    static let maxMessage = 16 * 1024
    /// Registrations per session (KIS-API.md: 41, `OPSP0008 MAX SUBSCRIBE OVER`).
    static let maxRegistrations = 41
    /// Malformed frames a session may send before it is closed.
    static let maxMalformed = 8
    /// Data frames sent for each registration.
    static let dataFrames = 3

    /// The paths KIS's samples connect to: `/`, `/tryitout` and `/tryitout/<tr_id>`.
    static func accepts(path: String) -> Bool {
        let bare = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        if bare == "/" || bare == "/tryitout" || bare == "/tryitout/" { return true }
        guard bare.hasPrefix("/tryitout/") else { return false }
        let rest = bare.dropFirst("/tryitout/".count)
        return (1...16).contains(rest.count) && rest.allSatisfy { $0.isLetter || $0.isNumber }
    }

    /// Starts the WebSocket listener; returns its port once bound.
    static func start(state: MockState, host: String, port: Int, logger: Logger) async throws -> (port: Int, task: Task<Void, any Error>) {
        try await KISMockServer.listen(what: "kis-mock's WebSocket listener") { onRunning in
            Application(
                router: Router(),
                server: upgrading(state: state),
                configuration: .init(address: .hostname(host, port: port), serverName: "kis-mock-ws"),
                onServerRunning: onRunning,
                logger: logger)
        }
    }

    /// An HTTP/1 server that upgrades KIS's WebSocket paths to sessions: the listener of its
    /// own (KIS's hosts serve the WebSocket on another port), and the REST port too, so a
    /// client told only the REST URL (`KISVAULT_KIS_BASE_URL`) reaches it at the same port.
    static func upgrading(state: MockState) -> HTTPServerBuilder {
        let socket = MockWebSocket(state: state)
        return .http1WebSocketUpgrade(configuration: .init(ws: .init(maxFrameSize: maxMessage))) { request, _, _ in
            guard accepts(path: request.path ?? "") else { return .dontUpgrade }
            return .upgrade([:]) { inbound, outbound, _ in
                try await socket.session(inbound: inbound, outbound: outbound)
            }
        }
    }

    /// One client session, until it closes or is closed.
    func session(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let session = Session()
        state.webSocketOpened()
        defer {
            if let appkey = session.appkey { state.releaseSession(appkey: appkey, id: session.id) }
            state.webSocketClosed()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // KIS's keep-alive: a PINGPONG frame now and then, which clients echo.
            let interval = state.configuration.webSocketPingSeconds
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                    try await outbound.write(.text(#"{"header":{"tr_id":"PINGPONG","datetime":"\#(MockTokens.koreaStamp(state.now()))"}}"#))
                }
            }
            defer { group.cancelAll() }
            for try await message in inbound.messages(maxSize: Self.maxMessage) {
                guard case .text(let text) = message else {
                    if try await malformed(session, outbound, "binary frames are not KIS's protocol") { break }
                    continue
                }
                if try await handle(text, session: session, outbound: outbound) == .close { break }
            }
        }
    }

    enum Next { case more, close }

    /// One text frame: a subscribe or unsubscribe, an echoed PINGPONG, or something else.
    func handle(_ text: String, session: Session, outbound: WebSocketOutboundWriter) async throws -> Next {
        guard let frame = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let header = frame["header"] as? [String: Any] else {
            return try await malformed(session, outbound, "JSON PARSING ERROR") ? .close : .more
        }
        if header["tr_id"] as? String == "PINGPONG" { return .more }
        let input = (frame["body"] as? [String: Any])?["input"] as? [String: Any]
        guard let key = header["approval_key"] as? String, !key.isEmpty,
              let trType = header["tr_type"] as? String, ["1", "2"].contains(trType),
              let trID = input?["tr_id"] as? String, Self.isCode(trID), let trKey = input?["tr_key"] as? String, Self.isCode(trKey) else {
            return try await malformed(session, outbound, "invalid request: approval_key, tr_type 1|2, input.tr_id and input.tr_key are required") ? .close : .more
        }
        func answer(_ rtCode: String, _ code: String, _ message: String, output: Bool = false) async throws {
            var body: [String: Any] = ["rt_cd": rtCode, "msg_cd": code, "msg1": message]
            if output { body["output"] = ["iv": MockTokens.hex(8), "key": MockTokens.hex(16)] }
            try await outbound.write(.text(jsonText(["header": ["tr_id": trID, "tr_key": trKey, "encrypt": "N"], "body": body])))
            state.countWebSocket(code)
        }
        if let forced = state.takeForced(path: KISMockServer.webSocketPath) {
            try await answer("9", forced.code, kisMessages[forced.code] ?? "오류")
            return .more
        }
        switch state.checkApproval(key) {
        case .unknown:
            try await answer("9", "OPSP0011", "invalid approval : NOT FOUND")
            return .close
        case .expired:
            try await answer("9", "OPSP0011", "invalid approval : EXPIRED")
            return .close
        case .valid(let appkey):
            if let bound = session.appkey, bound != appkey {
                try await answer("9", "OPSP0011", "invalid approval : another appkey's key in this session")
                return .more
            }
            if session.appkey == nil {
                guard state.claimSession(appkey: appkey, id: session.id) else {
                    try await answer("9", "OPSP8996", "ALREADY IN USE appkey")
                    return .close
                }
                session.appkey = appkey
            }
        }
        let registration = trID + "|" + trKey
        if trType == "2" {
            guard session.registrations.remove(registration) != nil else {
                try await answer("9", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
                return .more
            }
            try await answer("0", "OPSP0001", "UNSUBSCRIBE SUCCESS")
            return .more
        }
        guard !session.registrations.contains(registration) else {
            try await answer("9", "OPSP0002", "ALREADY IN SUBSCRIBE")
            return .more
        }
        guard session.registrations.count < Self.maxRegistrations else {
            try await answer("9", "OPSP0008", "MAX SUBSCRIBE OVER")
            return .more
        }
        session.registrations.insert(registration)
        try await answer("0", "OPSP0000", "SUBSCRIBE SUCCESS", output: true)
        for sequence in 0..<Self.dataFrames {
            try await outbound.write(.text(MockQuotes.tradeFrame(trID: trID, code: trKey, sequence: sequence, now: state.now())))
        }
        return .more
    }

    /// Answers a frame that is not KIS's protocol; true when the session has sent too many.
    func malformed(_ session: Session, _ outbound: WebSocketOutboundWriter, _ reason: String) async throws -> Bool {
        session.malformed += 1
        state.countWebSocket("malformed")
        let answer = ["header": ["tr_id": "", "tr_key": "", "encrypt": "N"], "body": ["rt_cd": "9", "msg_cd": "OPSP9999", "msg1": reason]]
        try await outbound.write(.text(jsonText(answer)))
        return session.malformed >= Self.maxMalformed
    }

    /// A tr_id or tr_key as KIS's are: 1-16 letters and digits.
    static func isCode(_ text: String) -> Bool {
        (1...16).contains(text.utf8.count) && text.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }

    /// What one connection has done. Used by its own handler only.
    final class Session: @unchecked Sendable {
        let id = UUID()
        var appkey: String?
        var registrations: Set<String> = []
        var malformed = 0
    }
}

func jsonText(_ object: [String: Any]) -> String {
    String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
}

extension MockQuotes {
    /// A real-time trade frame as KIS sends it: `0|TR_ID|001|fields separated by ^`, the
    /// first field the stock code and the third the price.
    static func tradeFrame(trID: String, code: String, sequence: Int, now: Date) -> String {
        let quote = quote(code: code)
        let price = (Int(quote["stck_prpr"] ?? "0") ?? 0) + sequence * 10
        let fields = [code, MockTokens.koreaStamp(now).suffix(6).description, String(price), quote["prdy_vrss_sign"] ?? "3",
                      quote["prdy_vrss"] ?? "0", "0.00", String(price), quote["stck_oprc"] ?? "0", quote["stck_hgpr"] ?? "0",
                      quote["stck_lwpr"] ?? "0", String(price + 10), String(price), String(1 + sequence), quote["acml_vol"] ?? "0"]
        return "0|\(trID)|001|" + fields.joined(separator: "^")
    }
}
