import Foundation

/// Timestamps are stored as ISO 8601 text in UTC with milliseconds
/// (`2026-11-25T03:04:05.678Z`): they sort as text, read well in a SQLite shell, and list
/// commands print them without parsing.
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = ms / 1000
        let millis = Int(ms - seconds * 1000)
        let days = Int(seconds / 86_400)
        seconds -= Int64(days) * 86_400
        let (y, m, d) = civilFromDays(days)
        let hh = Int(seconds / 3600), mm = Int(seconds % 3600 / 60), ss = Int(seconds % 60)
        // Written digit by digit: a bulk run writes several timestamps per account, and
        // `String(format:)` cost more than the rest of this function many times over.
        var bytes = Array("0000-00-00T00:00:00.000Z".utf8)
        func put(_ value: Int, at start: Int, width: Int) {
            var v = value
            for i in stride(from: start + width - 1, through: start, by: -1) {
                bytes[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(y, at: 0, width: 4)
        put(m, at: 5, width: 2)
        put(d, at: 8, width: 2)
        put(hh, at: 11, width: 2)
        put(mm, at: 14, width: 2)
        put(ss, at: 17, width: 2)
        put(millis, at: 20, width: 3)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses the stored form, and also a bare date (`2026-11-25`) or a date and time
    /// without milliseconds or zone (read as UTC), for `--since`.
    public static func parse(_ text: String) -> Date? {
        let scalars = Array(text.utf8)
        func num(_ start: Int, _ len: Int) -> Int? {
            guard start + len <= scalars.count else { return nil }
            var v = 0
            for c in scalars[start..<start + len] {
                guard (48...57).contains(c) else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let y = num(0, 4), scalars.count >= 10, scalars[4] == 45, let mo = num(5, 2),
              scalars[7] == 45, let d = num(8, 2), (1...12).contains(mo), (1...31).contains(d) else { return nil }
        var secs = 0, millis = 0
        if scalars.count > 10 {
            guard scalars[10] == 84 || scalars[10] == 32, let h = num(11, 2), scalars.count > 13, scalars[13] == 58,
                  let mi = num(14, 2) else { return nil }
            var s = 0
            var rest = 16
            if scalars.count > 16, scalars[16] == 58, let sv = num(17, 2) { s = sv; rest = 19 }
            if scalars.count > rest, scalars[rest] == 46, let msv = num(rest + 1, 3) { millis = msv; rest += 4 }
            if scalars.count > rest {
                guard scalars.count == rest + 1, scalars[rest] == 90 else { return nil }
            }
            guard h < 24, mi < 60, s < 61 else { return nil }
            secs = h * 3600 + mi * 60 + s
        }
        let days = daysFromCivil(y, mo, d)
        return Date(timeIntervalSince1970: Double(days) * 86_400 + Double(secs) + Double(millis) / 1000)
    }

    // Howard Hinnant's days-from-civil algorithms: exact for the proleptic Gregorian
    // calendar, and far cheaper than a DateFormatter per row.
    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
