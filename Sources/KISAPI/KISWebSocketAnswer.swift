import Foundation

/// The registration answer of KIS's WebSocket, read: pure (no I/O), so `make fuzz` runs it
/// on arbitrary frames. What it returns carries only cleaned text (``KISShapes``).
public enum KISWebSocketAnswer {
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

    /// The registration `approval check` makes and undoes (the trades of 005930).
    public static let trID = "H0STCNT0", trKey = "005930"

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
}
