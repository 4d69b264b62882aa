import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket

/// Proves an approval key where it is used: opens a KIS WebSocket session, registers one
/// harmless key (the trades of 005930), unregisters it and closes, never holding the
/// session longer than that (KIS allows one per appkey). docs/KIS-API.md, "The WebSocket
/// session", has the protocol.
public enum KISWebSocketCheck {
    public enum Outcome: Sendable, Equatable {
        /// KIS answered the registration with SUBSCRIBE SUCCESS.
        case ok
        /// KIS refused the key (unknown, expired, another appkey's): its code and message.
        case rejected(code: String, message: String)
        /// Another session holds this appkey (`OPSP8996 ALREADY IN USE`).
        case inUse
        /// No session: the host did not answer, or not in KIS's protocol.
        case unreachable(String)
    }

    /// The registration the check makes and undoes.
    public static let trID = "H0STCNT0", trKey = "005930"
    /// The largest frame read.
    static let maxMessage = 16 * 1024

    /// Checks `approvalKey` at `url` (the environment's WebSocket URL), within `timeout`.
    public static func check(url: String, approvalKey: String, timeout: TimeInterval = 10) async -> Outcome {
        let target = url.hasSuffix("/") ? url + "tryitout/" + trID : url + "/tryitout/" + trID
        let found = Found()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var logger = Logger(label: "kisvault.websocket")
                    logger.logLevel = .critical
                    var configuration = WebSocketClientConfiguration()
                    configuration.maxFrameSize = maxMessage
                    try await WebSocketClient.connect(url: target, configuration: configuration, logger: logger) { inbound, outbound, _ in
                        try await session(inbound: inbound, outbound: outbound, approvalKey: approvalKey, found: found)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                    throw TimedOut()
                }
                try await group.next()
                group.cancelAll()
            }
        } catch is TimedOut {
            return found.outcome ?? .unreachable("\(redacted(url)) did not answer the registration within \(Int(timeout)) s")
        } catch {
            return found.outcome ?? .unreachable("no WebSocket session at \(redacted(url)): \(describe(error))")
        }
        return found.outcome ?? .unreachable("\(redacted(url)) closed the session without answering the registration")
    }

    /// Registers, reads until the answer to it (skipping PINGPONG and data frames),
    /// unregisters when it succeeded, and closes.
    static func session(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, approvalKey: String, found: Found) async throws {
        var messages = inbound.messages(maxSize: maxMessage).makeAsyncIterator()
        try await outbound.write(.text(frame(approvalKey: approvalKey, register: true)))
        while let message = try await messages.next() {
            guard case .text(let text) = message, let outcome = outcome(of: text) else { continue }
            found.outcome = outcome
            break
        }
        if found.outcome == .ok {
            // Undone at once: the key must not stay registered. The answer is waited for
            // briefly, so the close does not race the unregistration.
            try await outbound.write(.text(frame(approvalKey: approvalKey, register: false)))
            while let message = try await messages.next() {
                if case .text(let text) = message, let answer = Answer(text), answer.trID == trID { break }
            }
        }
        try await outbound.close(.normalClosure, reason: nil)
    }

    /// What a frame says about the registration; nil for a frame that is not its answer:
    /// PINGPONG, data frames, an answer for another tr_id (one naming none is taken: an
    /// error may not echo it). Decided by the code, never by the message's text.
    public static func outcome(of text: String) -> Outcome? {
        guard let answer = Answer(text), answer.trID == trID || answer.trID.isEmpty else { return nil }
        if !KISShapes.isCode(answer.code) {
            return .rejected(code: "malformed", message: "the answer to the registration carries no code in KIS's shape")
        }
        if answer.code == "OPSP8996" { return .inUse }
        if answer.rtCode == "0" { return .ok }
        return .rejected(code: answer.code, message: answer.message)
    }

    /// A registration (`tr_type` 1) or unregistration (2) frame, as KIS's samples send it.
    public static func frame(approvalKey: String, register: Bool) -> String {
        let object: [String: Any] = [
            "header": ["approval_key": approvalKey, "custtype": "P", "tr_type": register ? "1" : "2", "content-type": "utf-8"],
            "body": ["input": ["tr_id": trID, "tr_key": trKey]],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// An acknowledgement frame's fields, cleaned as every text from KIS is.
    struct Answer {
        var trID: String
        var rtCode: String
        var code: String
        var message: String

        init?(_ text: String) {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
                  let header = object["header"] as? [String: Any] else { return nil }
            trID = KISShapes.cleanMessage(header["tr_id"] as? String ?? "")
            let body = object["body"] as? [String: Any] ?? [:]
            rtCode = body["rt_cd"] as? String ?? ""
            code = KISShapes.cleanMessage(body["msg_cd"] as? String ?? "")
            message = KISShapes.cleanMessage(body["msg1"] as? String ?? "")
            if trID != "PINGPONG" && rtCode.isEmpty { return nil }
        }
    }

    /// What the session found; written by its handler, read after it.
    final class Found: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Outcome?
        var outcome: Outcome? {
            get { lock.withLock { value } }
            set { lock.withLock { value = newValue } }
        }
    }

    struct TimedOut: Error {}

    static func redacted(_ url: String) -> String {
        guard var parts = URLComponents(string: url) else { return "the WebSocket URL" }
        parts.user = nil
        parts.password = nil
        parts.query = nil
        return parts.string ?? "the WebSocket URL"
    }

    static func describe(_ error: any Error) -> String {
        KISShapes.cleanMessage(String(describing: error))
    }
}
