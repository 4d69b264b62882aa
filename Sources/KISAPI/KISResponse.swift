import Foundation

/// Reading KIS's answers: the JSON object of a success, or a classified ``KISError`` from
/// either of KIS's two error shapes, and the fields of the approval and token answers.
///
/// Everything here is pure (no I/O): `make fuzz` runs it on arbitrary bytes, and
/// whatever a server sends, it returns a value or throws a ``KISError``, never traps.
/// What it returns has passed ``KISShapes``: no control characters, bounded lengths.
public enum KISResponse {
    /// The approval key of a successful `/oauth2/Approval` answer.
    /// - Throws: ``KISError`` (malformed response) for a missing or misshapen key.
    public static func approvalKey(from body: [String: Any], now: Date) throws(KISError) -> ApprovalKey {
        let key = try requiredText("approval_key", in: body, path: "/oauth2/Approval")
        guard KISShapes.isApprovalKey(key) else {
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/Approval with an approval_key that is not in KIS's shape (\(key.utf8.count) bytes; expected up to \(KISShapes.maxApprovalKey) of letters, digits and -_.+/=); nothing was stored", httpStatus: 200)
        }
        return ApprovalKey(key: key, issuedAt: now, expiresAt: now.addingTimeInterval(KISFacts.approvalKeyLifetime))
    }

    /// The token of a successful `/oauth2/tokenP` answer; its expiry from
    /// `access_token_token_expired` (Korea time), else `expires_in`.
    /// - Throws: ``KISError`` (malformed response) for a missing or misshapen token or expiry.
    public static func accessToken(from body: [String: Any], now: Date) throws(KISError) -> AccessToken {
        let token = try requiredText("access_token", in: body, path: "/oauth2/tokenP")
        guard KISShapes.isAccessToken(token) else {
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/tokenP with an access_token that is not in KIS's shape (\(token.utf8.count) bytes; expected a JWT of up to \(KISShapes.maxAccessToken)); nothing was stored", httpStatus: 200)
        }
        let lifetime: TimeInterval
        if let text = body["access_token_token_expired"] as? String, let date = KoreaTime.parse(text) {
            lifetime = date.timeIntervalSince(now)
        } else if let seconds = (body["expires_in"] as? NSNumber)?.doubleValue, seconds.isFinite {
            lifetime = seconds
        } else {
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/tokenP without an expiry it could read; nothing was stored", httpStatus: 200)
        }
        guard lifetime > 0, lifetime <= KISFacts.longestTokenLifetime else {
            let claim = lifetime <= 0 ? "an expiry already past" : "an expiry \(Int(min(lifetime, 1e9) / 3600)) h away"
            throw KISError(kind: .malformedResponse, message: "KIS answered /oauth2/tokenP with \(claim) by this machine's clock (a token lives at most \(Int(KISFacts.longestTokenLifetime / 3600)) h); nothing was stored — if this machine's clock is wrong, correct it and try again", httpStatus: 200)
        }
        let expires = now.addingTimeInterval(lifetime)
        let tokenType = (body["token_type"] as? String).flatMap { KISShapes.isWord($0) ? $0 : nil } ?? "Bearer"
        return AccessToken(token: token, tokenType: tokenType, issuedAt: now, expiresAt: expires)
    }

    /// The non-empty string `field` of a successful answer, or a malformed-response error
    /// naming the field (never its value).
    static func requiredText(_ field: String, in body: [String: Any], path: String) throws(KISError) -> String {
        guard let text = body[field] as? String, !text.isEmpty else {
            throw KISError(kind: .malformedResponse, message: "KIS answered \(path) without an \(field)", httpStatus: 200)
        }
        return text
    }

    /// Turns a response into its JSON object or a classified ``KISError``.
    /// - Throws: ``KISError``, whatever `body` holds.
    public static func decode(status: Int, body: Data, path: String) throws(KISError) -> [String: Any] {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        if let object {
            // KIS's two error shapes: OAuth endpoints and data endpoints.
            if let code = object["error_code"] as? String {
                throw error(code: code, message: object["error_description"], status: status, path: path)
            }
            if let rt = object["rt_cd"] as? String, rt != "0", let code = object["msg_cd"] as? String {
                throw error(code: code, message: object["msg1"], status: status, path: path)
            }
            if (200..<300).contains(status) { return object }
        }
        if object != nil {
            // Well-formed JSON, but neither a success nor one of KIS's error shapes.
            throw KISError(kind: status >= 500 ? .retryable : .permanent,
                           message: "KIS answered \(path) with HTTP \(status) and JSON in neither of its error shapes", httpStatus: status)
        }
        let shape = body.isEmpty ? "an empty body"
            : body.first == UInt8(ascii: "<") ? "an HTML page (a proxy error?)" : "a body that is not complete JSON"
        throw KISError(kind: .malformedResponse, message: "KIS answered \(path) with HTTP \(status) and \(shape)", httpStatus: status)
    }

    /// A KIS error from one of its two shapes. The code and message come from the server
    /// and reach terminals and the vault: a code that is not KIS's shape (`EGW00133`) is
    /// not trusted, and the message loses its control characters and is cut to
    /// ``KISShapes/maxMessage`` characters.
    static func error(code: String, message: Any?, status: Int, path: String) -> KISError {
        let text = (message as? String).map(KISShapes.cleanMessage) ?? "KIS refused \(path)"
        guard KISShapes.isCode(code) else {
            return KISError(kind: status >= 500 ? .retryable : .permanent, code: nil,
                            message: "KIS refused \(path) with an error code not in KIS's shape: \(text)", httpStatus: status)
        }
        return KISError(kind: KISError.kind(forCode: code, status: status), code: code, message: text, httpStatus: status)
    }
}
