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
    /// The Gregorian calendar in Korea's zone: UTC+9, no daylight saving.
    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 9 * 3600)!
        return calendar
    }()

    /// Parses `yyyy-MM-dd HH:mm:ss`, which KIS writes in Korea time (UTC+9, no DST).
    /// Strict about the shape (a `T`, a zone or a missing field is refused); once per
    /// token, so Foundation's calendar does the date arithmetic.
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
        return calendar.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi, second: s))
    }

    /// `date` as KIS writes it: `yyyy-MM-dd HH:mm:ss` in Korea time, seconds rounded down.
    public static func format(_ date: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ v: Int?) -> String { let v = v ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(c.year ?? 0)-\(two(c.month))-\(two(c.day)) \(two(c.hour)):\(two(c.minute)):\(two(c.second))"
    }
}
