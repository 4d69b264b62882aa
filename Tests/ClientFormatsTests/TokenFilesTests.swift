import Foundation
import Testing
import CredentialService
import VaultCrypto
import VaultStore
import AccountFile
import ClientFormats

/// The sample's token file is read against the machine's local time: its `valid-date` must
/// be written in that zone, the margin before the real expiry.
@Suite struct TokenFilesTests {
    @Test(arguments: ["America/New_York", "Asia/Seoul", "UTC", "Pacific/Kiritimati"])
    func sampleValidDateIsLocalTimeLessTheMargin(zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        // 2026-12-02 08:16:59 in Korea is 2026-12-01 23:16:59 UTC.
        let expires = Date(timeIntervalSince1970: 1_796_167_019)
        let now = expires.addingTimeInterval(-20 * 3600)
        let file = try TokenFiles.file(format: .kisSample, TokenFiles.Input(account: "a", token: "eyJhbGciOiJIUzUxMiJ9.e30.c2ln", expiresAt: expires,
                                                                             margin: 600, now: now, zone: zone))
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        let expected = formatter.string(from: expires.addingTimeInterval(-600))
        #expect(String(decoding: file.contents, as: UTF8.self) == "token: eyJhbGciOiJIUzUxMiJ9.e30.c2ln\nvalid-date: \(expected)\n")
        formatter.dateFormat = "yyyyMMdd"
        #expect(file.name == "KIS" + formatter.string(from: now))
        // The comparison the sample makes, on a machine in that zone, just after the margin
        // began: the token must already count as expired there.
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        #expect(!(expected > formatter.string(from: expires.addingTimeInterval(-599))))
        #expect(expected > formatter.string(from: expires.addingTimeInterval(-601)))
    }
}

/// The names and encodings other clients' caches use, checked against their standards and
/// against Python itself.
@Suite struct ClientCacheEncodingTests {
    @Test func sha1MatchesTheStandardsVectors() {
        #expect(Digest.sha1Hex([UInt8]()) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(Digest.sha1Hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Digest.sha1Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(Digest.sha1Hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        #expect(Digest.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func pythonLoadsThePickle() throws {
        let data = Pickle.dictionary([("access_token", .text("eyJ.한글.x")), ("timestamp", .integer(1_796_167_019)),
                                      ("negative", .integer(-5)), ("empty", .text(""))])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import json, pickle, sys; print(json.dumps(pickle.load(sys.stdin.buffer), sort_keys=True, ensure_ascii=False))"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(data)
        try input.fileHandleForWriting.close()
        let answer = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(answer == #"{"access_token": "eyJ.한글.x", "empty": "", "negative": -5, "timestamp": 1796167019}"# + "\n")
    }

    @Test func eachFormatIsNamedAsItsReaderLooksForIt() throws {
        let app = AppCredentials(environment: .mock, secrets: AccountSecrets(
            appkey: SecureBytes(utf8: "PSappkey"), appsecret: SecureBytes(utf8: "secret"), accountNumber: nil, htsID: SecureBytes(utf8: "me")))
        let expires = Date(timeIntervalSince1970: 1_796_167_019)
        let input = TokenFiles.Input(account: "a", token: "eyJ.t.s", expiresAt: expires, margin: 600, now: expires.addingTimeInterval(-7200), app: app)
        let pykis = try TokenFiles.file(format: .pykis, input)
        #expect(pykis.name == "token_virtual_me_\(Digest.sha1Hex(Array("pykismePSappkeysecrettoken".utf8))).json")
        let fields = try #require(try JSONSerialization.jsonObject(with: pykis.contents) as? [String: Any])
        // 10 minutes before 08:16:59 Korea time, and the seconds from now to then.
        #expect(fields["access_token_token_expired"] as? String == "2026-12-02 08:06:59" && fields["expires_in"] as? Int == 6600)
        let trader = try TokenFiles.file(format: .kisTrader, input)
        #expect(trader.name == "paper-" + Digest.sha256Hex(Array("PSappkey".utf8)).prefix(16) + ".json")
        #expect(String(decoding: trader.contents, as: UTF8.self) == #"{"access_token":"eyJ.t.s","expires_at":1796166419}"# + "\n")
        #expect(try TokenFiles.file(format: .mojito2, input).name == "token.dat")
        var noID = input
        noID.app?.htsID = nil
        #expect(throws: ServiceError.self) { try TokenFiles.file(format: .pykis, noID) }
    }
}

/// The sample's kis_devlp.yaml, written and read back by the two halves of the format: the
/// same accounts come back, with the account number split 8+2 and joined again.
@Suite struct KISYAMLRoundTripTests {
    @Test func whatIsWrittenReadsBackAsTheSameAccounts() throws {
        let real = KISYAMLWriter.Entry(name: "desk-real", environment: .real, appkey: "PS" + String(repeating: "a", count: 34),
                                       appsecret: String(repeating: "s", count: 180), accountNumber: "12345678-01", htsID: "trader1")
        let mock = KISYAMLWriter.Entry(name: "desk-mock", environment: .mock, appkey: "PS" + String(repeating: "b", count: 34),
                                       appsecret: String(repeating: "t", count: 180), accountNumber: "87654321-01", htsID: "trader1")
        let text = try KISYAMLWriter.text([real, mock], urls: try KISURLs.fromEnvironment([:]), agent: "kisvault/test")
        var reader = AccountFileReader()
        reader.parseKISYAML(text, base: "desk")
        #expect(reader.problems.isEmpty, "\(reader.problems)")
        let byName = Dictionary(uniqueKeysWithValues: reader.records.map { ($0.fields["name"] ?? "", $0.fields) })
        for entry in [real, mock] {
            let fields = try #require(byName[entry.name])
            #expect(fields["environment"] == entry.environment.rawValue && fields["appkey"] == entry.appkey && fields["appsecret"] == entry.appsecret)
            #expect(fields["account_no"] == entry.accountNumber && fields["hts_id"] == entry.htsID)
        }
    }

    @Test func whatTheFileCannotHoldIsRefused() throws {
        let urls = try KISURLs.fromEnvironment([:])
        let one = KISYAMLWriter.Entry(name: "a", environment: .real, appkey: "k", appsecret: "s")
        #expect(throws: ServiceError.self) { try KISYAMLWriter.text([one, one], urls: urls, agent: "t") }
        var other = one
        other.environment = .mock
        other.htsID = "x"
        var first = one
        first.htsID = "y"
        #expect(throws: ServiceError.self) { try KISYAMLWriter.text([first, other], urls: urls, agent: "t") }
    }
}
