import Foundation
import NetworkRules
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket

/// Proves an approval key where it is used: opens a KIS WebSocket session, registers one
/// harmless key (the trades of 005930), unregisters it and closes, never holding the
/// session longer than that (KIS allows one per appkey). docs/KIS-API.md, "The WebSocket
/// session", has the protocol.
public enum KISWebSocketCheck {
    public typealias Outcome = KISWebSocketAnswer.Outcome

    /// The registration the check makes and undoes.
    public static let trID = KISWebSocketAnswer.trID, trKey = KISWebSocketAnswer.trKey
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
                if case .text(let text) = message, let answer = KISWebSocketAnswer.Answer(text), answer.trID == trID { break }
            }
        }
        try await outbound.close(.normalClosure, reason: nil)
    }

    /// What a frame says about the registration (``KISWebSocketAnswer/outcome(of:)``).
    public static func outcome(of text: String) -> Outcome? { KISWebSocketAnswer.outcome(of: text) }

    /// A registration (`tr_type` 1) or unregistration (2) frame, as KIS's samples send it.
    public static func frame(approvalKey: String, register: Bool) -> String {
        let object: [String: Any] = [
            "header": ["approval_key": approvalKey, "custtype": "P", "tr_type": register ? "1" : "2", "content-type": "utf-8"],
            "body": ["input": ["tr_id": trID, "tr_key": trKey]],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
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

    /// What a message shows of the WebSocket URL: no user or password, no query.
    static func redacted(_ url: String) -> String {
        URLText.redacted(String(url.prefix { $0 != "?" && $0 != "#" }))
    }

    static func describe(_ error: any Error) -> String {
        KISShapes.cleanMessage(String(describing: error))
    }
}
