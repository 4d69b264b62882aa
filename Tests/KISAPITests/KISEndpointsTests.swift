import Foundation
import NetworkRules
import KISAPI
import Testing

/// Which base URLs may carry an appkey: https anywhere, http only to loopback addresses.
@Suite struct KISEndpointsTests {
    func accepted(_ url: String) -> Bool {
        (try? KISEndpoints(both: url).validate()) != nil
    }

    @Test func plainHTTPOnlyToLiteralLoopback() {
        for url in ["http://127.0.0.1:8080", "http://127.255.0.9", "http://[::1]:9", "http://localhost:9", "https://127.0.0.1.evil.test", "https://openapi.koreainvestment.com:9443",
                    "http://127.0.0.1:8080?x=1", "http://127.0.0.1#f", "HTTP://127.0.0.1:1/path"] {
            #expect(accepted(url), "\(url)")
        }
        // Names that look like addresses are names; shorthand IPv4 forms are not literals.
        for url in ["http://127.0.0.1.evil.test:8080", "http://127.evil.test", "http://127.1", "http://0x7f000001", "http://2130706433",
                    "http://[::ffff:127.0.0.1]", "http://[::2]", "http://128.0.0.1", "http://localhost.evil.test", "ftp://127.0.0.1", "127.0.0.1:80",
                    // The host is read as written (not through URLComponents' IDNA decoding).
                    "http://[::1", "http://:80", "http://@127.0.0.1.evil.test", "http://127.0.0.1@evil.test", "http://[::1].evil.test", "http://[::1]evil:80"] {
            #expect(!accepted(url), "\(url)")
        }
    }

    @Test func credentialsInAURLAreRefusedAndNeverShown() {
        for url in ["https://alice:s3cret@example.test", "http://alice:s3cret@127.0.0.1:9", "https://token@example.test/x?y=1"] {
            do {
                try KISEndpoints(both: url).validate()
                Issue.record("accepted \(url)")
            } catch {
                #expect(!error.description.contains("s3cret") && !error.description.contains("alice") && !error.description.contains("token"), "\(error)")
            }
        }
        #expect(URLText.redacted("https://a:b@host:1/p@q") == "https://***@host:1/p@q")
        #expect(URLText.redacted("junk a:b@c") == "***@c")
        #expect(URLText.redacted("http://h/\u{1b}[2J") == "http://h/\\x1b[2J")
    }

    @Test func shapesOfWhatKISSends() {
        #expect(KISShapes.isApprovalKey(String(repeating: "a1b2-", count: 57) + "x"))
        #expect(!KISShapes.isApprovalKey("abc\n\u{1b}]0;PWNED\u{07}" + String(repeating: "x", count: 30)))
        #expect(!KISShapes.isApprovalKey("short"))
        #expect(!KISShapes.isAccessToken(String(repeating: "a", count: 9000)))
        #expect(KISShapes.isAccessToken("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ0b2tlbiJ9.c2ln"))
        #expect(KISShapes.isCode("EGW00133") && !KISShapes.isCode("E\u{1b}[2J") && !KISShapes.isCode(""))
        let cleaned = KISShapes.cleanMessage("a\u{1b}[31m\nb\u{9b}c\u{202e}d" + String(repeating: "z", count: 400))
        #expect(!cleaned.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) || $0.value == 0x202e })
        #expect(cleaned.count == KISShapes.maxMessage + 1 && cleaned.hasSuffix("…"))
    }

    @Test func webSocketURLsFollowTheRESTURLs() throws {
        let defaults = try KISEndpoints.fromEnvironment([:])
        #expect(defaults.realWebSocket == "ws://ops.koreainvestment.com:21000" && defaults.mockWebSocket == "ws://ops.koreainvestment.com:31000")
        let mock = try KISEndpoints.fromEnvironment(["KISVAULT_KIS_BASE_URL": "http://127.0.0.1:8080"])
        #expect(mock.realWebSocket == "ws://127.0.0.1:8080" && mock.mockWebSocket == "ws://127.0.0.1:8080")
        let split = try KISEndpoints.fromEnvironment(["KISVAULT_KIS_REAL_URL": "https://gw.example.test:9443/x", "KISVAULT_KIS_MOCK_WS_URL": "ws://[::1]:7"])
        #expect(split.realWebSocket == "wss://gw.example.test:9443" && split.mockWebSocket == "ws://[::1]:7")
        #expect(throws: KISConfigurationError.self) { try KISEndpoints.fromEnvironment(["KISVAULT_KIS_WS_URL": "ws://127.0.0.1.evil.test:1"]) }
    }
}
