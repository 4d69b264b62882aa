import Foundation
import Testing
@testable import KisvaultCLI

/// The sample's token file is read against the machine's local time: its `valid-date` must
/// be written in that zone, the margin before the real expiry.
@Suite struct TokenFilesTests {
    @Test(arguments: ["America/New_York", "Asia/Seoul", "UTC", "Pacific/Kiritimati"])
    func sampleValidDateIsLocalTimeLessTheMargin(zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        // 2026-12-02 08:16:59 in Korea is 2026-12-01 23:16:59 UTC.
        let expires = Date(timeIntervalSince1970: 1_796_167_019)
        let now = expires.addingTimeInterval(-20 * 3600)
        let file = TokenFiles.file(format: .kisSample, account: "a", token: "eyJhbGciOiJIUzUxMiJ9.e30.c2ln", expiresAt: expires,
                                   margin: 600, now: now, zone: zone)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        let expected = formatter.string(from: expires.addingTimeInterval(-600))
        #expect(file.contents == "token: eyJhbGciOiJIUzUxMiJ9.e30.c2ln\nvalid-date: \(expected)\n")
        formatter.dateFormat = "yyyyMMdd"
        #expect(file.name == "KIS" + formatter.string(from: now))
        // The comparison the sample makes, on a machine in that zone, just after the margin
        // began: the token must already count as expired there.
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        #expect(!(expected > formatter.string(from: expires.addingTimeInterval(-599))))
        #expect(expected > formatter.string(from: expires.addingTimeInterval(-601)))
    }
}
