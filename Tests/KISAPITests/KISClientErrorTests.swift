import Foundation
@testable import KISAPI
import KISMock
import Testing
import VaultTestSupport

/// The client against the mock for every row of KIS-API.md's error table and every
/// fault kind: typed error, classification, retries, and no secret in the text.
@Suite struct KISClientErrorTests {
    @Test func approvalAndTokenSucceed() async throws {
        try await withMock { mock, client, accounts in
            let a = accounts[0]
            let key = try await client.approvalKey(environment: .mock, appkey: a.appkey, secret: a.appsecret)
            #expect(key.key.count == 286)
            #expect(abs(key.expiresAt.timeIntervalSince(key.issuedAt) - 86_400) < 1)
            let token = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
            #expect(token.tokenType == "Bearer")
            #expect(abs(token.expiresAt.timeIntervalSinceNow - 86_400) < 5)
            // The JWT's jti is the appkey (KIS-API.md).
            let payload = token.token.split(separator: ".")[1]
            var b64 = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while b64.count % 4 != 0 { b64 += "=" }
            let claims = try JSONSerialization.jsonObject(with: Data(base64Encoded: b64)!) as! [String: Any]
            #expect(claims["jti"] as? String == a.appkey)
            try await client.revoke(environment: .mock, appkey: a.appkey, secret: a.appsecret, token: token.token)
            #expect(mock.requests("/oauth2/revokeP") == 1)
        }
    }

    @Test(arguments: [
        ("EGW00001", 500, "oauth"), ("EGW00002", 500, "oauth"), ("EGW00201", 500, "data"),
    ])
    func retryableCodesAreRetried(code: String, status: Int, shape: String) async throws {
        try await withMock { mock, client, accounts in
            let a = accounts[0]
            try await mock.queueError(code, status: status, shape: shape, count: 1)
            _ = try await client.approvalKey(environment: .mock, appkey: a.appkey, secret: a.appsecret)
            #expect(mock.requests("/oauth2/Approval") == 2)
            try await mock.queueError(code, status: status, shape: shape, count: 5)
            do {
                _ = try await client.approvalKey(environment: .mock, appkey: a.appkey, secret: a.appsecret)
                Issue.record("expected \(code)")
            } catch let error as KISError {
                #expect(error.code == code && error.kind == .retryable && error.httpStatus == status)
                #expect(!leaks(error, [a.appkey, a.appsecret]))
            }
            #expect(mock.requests("/oauth2/Approval") == 5)
        }
    }

    @Test(arguments: [
        ("EGW00102", KISError.Kind.credentialsRejected), ("EGW00103", .credentialsRejected),
        ("EGW00104", .credentialsRejected), ("EGW00105", .credentialsRejected),
        ("EGW00121", .tokenInvalid), ("EGW00122", .tokenInvalid), ("EGW00123", .tokenInvalid),
        ("EGW00132", .permanent), ("EGW00206", .permanent), ("EGW00207", .permanent),
        ("EGW00133", .rateLimited),
    ])
    func nonRetryableCodesFailAtOnce(code: String, kind: KISError.Kind) async throws {
        try await withMock { mock, client, accounts in
            let a = accounts[1]
            try await mock.queueError(code, status: 403)
            do {
                _ = try await client.accessToken(environment: .mock, appkey: a.appkey, secret: a.appsecret, now: mock.now)
                Issue.record("expected \(code)")
            } catch let error as KISError {
                #expect(error.code == code && error.kind == kind && error.httpStatus == 403)
                #expect(!error.message.isEmpty)
                #expect(!leaks(error, [a.appkey, a.appsecret]))
            }
            #expect(mock.requests("/oauth2/tokenP") == 1)
        }
    }

    @Test func credentialErrorsComeFromRealValidation() async throws {
        try await withMock { mock, client, accounts in
            let a = accounts[0]
            let cases: [(String, String, String)] = [
                ("", a.appsecret, "EGW00102"), ("PS" + String(repeating: "x", count: 34), a.appsecret, "EGW00103"),
                (a.appkey, "", "EGW00104"), (a.appkey, String(a.appsecret.dropLast()) + "!", "EGW00105"),
            ]
            for (key, secret, code) in cases {
                do {
                    _ = try await client.approvalKey(environment: .mock, appkey: key, secret: secret)
                    Issue.record("expected \(code)")
                } catch let error as KISError {
                    #expect(error.code == code && error.kind == .credentialsRejected)
                    #expect(!leaks(error, [key, secret, a.appsecret]))
                }
            }
            #expect(mock.requests("/oauth2/Approval") == 4)
            do {
                try await client.revoke(environment: .mock, appkey: a.appkey, secret: a.appsecret, token: "not-a-token")
                Issue.record("expected EGW00121")
            } catch let error as KISError {
                #expect(error.code == "EGW00121" && error.kind == .tokenInvalid)
            }
        }
    }

    @Test(arguments: MockFault.allCases.filter { $0 != .serverError })
    func faultsAreTypedAndRetried(fault: MockFault) async throws {
        try await withMock(configure: {
            $0.failRate = 1
            $0.faults = [fault]
            $0.stallSeconds = 3
        // Only the stall needs a short client timeout; the others get a generous one so a
        // busy machine cannot turn a typed fault into a timeout.
        // The drip answers at once and then sends a byte a second: the call's total of 2 s
        // is its deadline, with no time left for a retry.
        }, retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.02, maxTotal: fault == .drip ? 2 : 20), timeout: fault == .stall ? 1 : 10) { mock, client, accounts in
            let a = accounts[0]
            do {
                _ = try await client.approvalKey(environment: .mock, appkey: a.appkey, secret: a.appsecret)
                Issue.record("expected a failure for \(fault)")
            } catch let error as KISError {
                switch fault {
                case .html: #expect(error.kind == .malformedResponse && error.httpStatus == 502 && error.message.contains("HTML"))
                case .truncated: #expect(error.kind == .malformedResponse && error.message.contains("not complete JSON"))
                case .empty: #expect(error.kind == .malformedResponse && error.message.contains("empty body"))
                case .drop, .stall, .drip: #expect(error.kind == .unavailable, "\(error)")
                case .serverError: break
                case .hostileKey: #expect(error.kind == .malformedResponse && error.message.contains("not in KIS's shape"))
                case .hostileError:
                    // KIS's rejection, its text without the escapes, newline and C1 control.
                    #expect(error.kind == .credentialsRejected && error.code == "EGW00103")
                    #expect(error.message.hasPrefix("bad key") && !error.message.contains("\n"))
                }
                #expect(!error.message.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
                #expect(error.isRetryable == (fault != .hostileError))
                #expect(!leaks(error, [a.appkey, a.appsecret]))
            }
            // A rejection is not retried; transport and format faults are, once.
            // A well-formed answer whose key is not in KIS's shape is not retried either: it
            // is what that server says, not a transport fault.
            let expected = fault == .hostileError || fault == .hostileKey || fault == .drip ? 1 : 2
            #expect(await eventually { mock.requests("/oauth2/Approval") == expected }, "\(mock.requests("/oauth2/Approval")) requests")
            #expect(client.requestsSent == expected)
        }
    }

    @Test func serverErrorFaultAlternatesCodes() async throws {
        // A time budget no busy machine can exhaust: the count of attempts is the policy's,
        // not the scheduler's.
        try await withMock(configure: { $0.failRate = 1; $0.faults = [.serverError] },
                           retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.02, maxTotal: 120)) { mock, client, accounts in
            var codes = Set<String>()
            for a in accounts.prefix(4) {
                do { _ = try await client.approvalKey(environment: .mock, appkey: a.appkey, secret: a.appsecret) } catch let error as KISError {
                    codes.insert(error.code ?? "")
                    #expect(error.kind == .retryable && error.httpStatus == 500)
                }
            }
            #expect(codes.isSubset(of: ["EGW00001", "EGW00002"]) && !codes.isEmpty)
            let stats = mock.stats()
            #expect((stats["outcomes"] as! [String: Int])["fault:server-error"] == 12)
        }
    }

    @Test func connectionRefusedIsUnavailable() async throws {
        _ = TestLogging.warningsOnly
        var configuration = KISClientConfiguration(endpoints: KISEndpoints(both: "http://127.0.0.1:9"))
        configuration.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01, maxTotal: 5)
        configuration.connectTimeout = 0.5
        let client = try KISClient(configuration: configuration)
        do {
            _ = try await client.approvalKey(environment: .real, appkey: "PSsecretappkey000000000000000000000", secret: "s3cr3t")
            Issue.record("expected a connection failure")
        } catch {
            #expect(error.kind == .unavailable)
            #expect(!leaks(error, ["PSsecretappkey000000000000000000000", "s3cr3t"]))
        }
        #expect(client.requestsSent == 2)
        await client.shutdown()
    }

    @Test func endpointsRefusePlainHTTPOffLoopback() throws {
        #expect(throws: KISConfigurationError.self) { try KISEndpoints(both: "http://openapi.koreainvestment.com:9443").validate() }
        #expect(throws: KISConfigurationError.self) { try KISEndpoints(both: "ftp://127.0.0.1").validate() }
        #expect(throws: KISConfigurationError.self) { try KISEndpoints(both: "not a url").validate() }
        try KISEndpoints().validate()
        try KISEndpoints(both: "http://127.0.0.1:8080").validate()
        try KISEndpoints(both: "http://localhost:8080").validate()
        #expect(throws: KISConfigurationError.self) { try KISClient(configuration: KISClientConfiguration(endpoints: KISEndpoints(both: "http://10.0.0.1"))) }
        let env = try KISEndpoints.fromEnvironment(["KISVAULT_KIS_BASE_URL": "http://127.0.0.1:1", "KISVAULT_KIS_REAL_URL": "https://kis.example:9443"])
        #expect(env.real == "https://kis.example:9443" && env.mock == "http://127.0.0.1:1")
        #expect(try KISEndpoints.fromEnvironment([:]) == KISEndpoints())
        #expect(throws: KISConfigurationError.self) { try KISEndpoints.fromEnvironment(["KISVAULT_KIS_MOCK_URL": "http://192.168.0.5"]) }
    }

    @Test func requestBodiesAreJSONWhateverTheSecretHolds() throws {
        let awkward = "q\"b\\n\nt\tc\u{01}\u{1F}del\u{7F}한글😀/"
        let body = KISClient.jsonObject(["appkey": awkward, "secretkey": "plain", "grant_type": "client_credentials"])
        #expect(body.hasPrefix(#"{"appkey":"q\"b\\n\nt\tc\u0001\u001f"#))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String])
        #expect(parsed == ["appkey": awkward, "secretkey": "plain", "grant_type": "client_credentials"])
        #expect(KISClient.jsonObject([:]) == "{}")
    }

    /// The class: a value from outside that kisvault acts on for a day or forever. A lifetime
    /// in the past would be handed out as fresh; one in year 9999 never renewed.
    @Test func absurdTokenLifetimesAreMalformed() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0b2tlbiJ9.c2lnbmF0dXJl"
        func korea(_ offset: TimeInterval) -> String {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(secondsFromGMT: 9 * 3600)
            f.dateFormat = "yyyy-MM-dd HH:mm:ss"
            return f.string(from: now.addingTimeInterval(offset))
        }
        let refused: [[String: Any]] = [
            ["expires_in": -1], ["expires_in": 0], ["expires_in": 1e300], ["expires_in": 26 * 3600],
            ["expires_in": Double.infinity], ["access_token_token_expired": korea(-3600), "expires_in": 86_400],
            ["access_token_token_expired": "9999-12-31 23:59:59", "expires_in": 86_400],
        ]
        for fields in refused {
            let body = fields.merging(["access_token": jwt]) { a, _ in a }
            #expect(throws: KISError.self, "\(fields)") { try KISResponse.accessToken(from: body, now: now) }
            do { _ = try KISResponse.accessToken(from: body, now: now) } catch {
                #expect(error.kind == .malformedResponse && error.message.contains("nothing was stored") && !error.message.contains(jwt))
            }
        }
        let day = try KISResponse.accessToken(from: ["access_token": jwt, "expires_in": 86_400], now: now)
        #expect(day.expiresAt == now.addingTimeInterval(86_400))
        let korean = try KISResponse.accessToken(from: ["access_token": jwt, "access_token_token_expired": korea(7200), "expires_in": 86_400], now: now)
        #expect(korean.expiresAt == now.addingTimeInterval(7200))
    }

    @Test func koreaTimeAndMasking() {
        #expect(KoreaTime.parse("2023-12-22 08:16:59") == Date(timeIntervalSince1970: 1_703_200_619))
        #expect(KoreaTime.parse("2023-12-22T08:16:59") == nil)
        #expect(KoreaTime.parse("2023-13-22 08:16:59") == nil)
        #expect(maskCredential("PSabcdefghijklmnopqrstuvwxyz01234uus") == "PSab…uus")
        #expect(maskCredential("short") == "(5 chars)")
    }
}
