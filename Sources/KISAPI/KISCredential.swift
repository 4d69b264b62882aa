import Foundation

/// A WebSocket approval key from `/oauth2/Approval`.
public struct ApprovalKey: Sendable, Equatable {
    public var key: String
    public var issuedAt: Date
    /// KIS sends no expiry: approval keys live 24 hours from issuance.
    public var expiresAt: Date
}

/// A REST access token from `/oauth2/tokenP`.
public struct AccessToken: Sendable, Equatable {
    public var token: String
    public var tokenType: String
    public var issuedAt: Date
    public var expiresAt: Date
}

/// Parsing KIS's `access_token_token_expired`.
public enum KoreaTime {
    /// Parses `yyyy-MM-dd HH:mm:ss`, which KIS writes in Korea time (UTC+9, no DST).
    public static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 19, b[4] == 45, b[7] == 45, b[10] == 32, b[13] == 58, b[16] == 58 else { return nil }
        func n(_ s: Int, _ l: Int) -> Int? {
            var v = 0
            for c in b[s..<s + l] { guard (48...57).contains(c) else { return nil }; v = v * 10 + Int(c - 48) }
            return v
        }
        guard let y = n(0, 4), let mo = n(5, 2), let d = n(8, 2), let h = n(11, 2), let mi = n(14, 2), let s = n(17, 2),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        // Days from civil (proleptic Gregorian), then shift from UTC+9 to UTC.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Date(timeIntervalSince1970: Double(days * 86_400 + h * 3600 + mi * 60 + s - 9 * 3600))
    }
}
