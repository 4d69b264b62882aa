import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KISMock
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `agent start --metrics` (issue 24): what it serves passes `promtool check metrics`, a
/// real Prometheus (Debian's) scraping it has each test account's expiry series, and the
/// shipped alerting rules pass `promtool check rules` and `promtool test rules`.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool"), "needs Debian's prometheus package (make deps installs it)"))
struct CLIMetricsTests {
    static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// A free loopback port (bound, read, closed: good enough for a test's own servers).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func fetch(_ url: String) async -> String? {
        guard let (data, response) = try? await URLSession.shared.data(from: URL(string: url)!),
              (response as? HTTPURLResponse)?.statusCode == 200 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    @Test func prometheusScrapesTheAgent() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 3)
        let port = Self.freePort()
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        agent.arguments = ["agent", "start", "--foreground", "--metrics", "127.0.0.1:\(port)"]
        agent.environment = box.environment
        agent.standardOutput = FileHandle.nullDevice
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        defer { kill(agent.processIdentifier, SIGTERM); agent.waitUntilExit() }
        #expect(try await CLIAgentTests.waitFor { FileManager.default.fileExists(atPath: CLIAgentTests.socket(box)) })
        for account in accounts {
            #expect(try await box.runAsync(["approval", "get", account.name], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        }
        let text = try #require(await Self.fetch("http://127.0.0.1:\(port)/metrics"))
        #expect(text.contains("kisvault_credentials{kind=\"approval\",state=\"fresh\"} 3"), "\(text)")
        #expect(text.contains("kisvault_kis_requests_total{outcome=\"ok\",path=\"/oauth2/Approval\"} 3") || text.contains("kisvault_kis_requests_total{path=\"/oauth2/Approval\",outcome=\"ok\"} 3"), "\(text)")
        #expect(text.contains("route=\"/v1/accounts/:name/approval-key\""))
        #expect(text.contains("kisvault_issuances_total{kind=\"approval\",outcome=\"issued\"} 3"), "\(text)")
        // A failed issuance is counted by kind and KIS's code (no retry: a rejected appkey).
        mock.queueError("EGW00103", path: "/oauth2/tokenP")
        #expect(try await box.runAsync(["token", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil]).status == 5)
        let failed = try #require(await Self.fetch("http://127.0.0.1:\(port)/metrics"))
        #expect(failed.contains("kisvault_issuances_total{kind=\"token\",outcome=\"EGW00103\"} 1"), "\(failed)")
        for account in accounts { #expect(!text.contains(account.appkey) && !text.contains(account.appsecret)) }
        // promtool's linter on exactly what was served.
        let check = try box.run(["check", "metrics"], stdin: text, tool: "", wrapper: ["/usr/bin/promtool"])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        // A real Prometheus scraping it every second: the expiry series of each account.
        let web = Self.freePort()
        let config = box.write("prometheus.yml", """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: kisvault
                static_configs:
                  - targets: ['127.0.0.1:\(port)']
            """)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(config)", "--storage.tsdb.path=\(box.dir)/tsdb", "--web.listen-address=127.0.0.1:\(web)"]
        prometheus.standardOutput = FileHandle.nullDevice
        prometheus.standardError = FileHandle.nullDevice
        try prometheus.run()
        defer { prometheus.terminate(); prometheus.waitUntilExit() }
        var found: Set<String> = []
        let query = "http://127.0.0.1:\(web)/api/v1/query?query=kisvault_credential_expiry_seconds%7Bkind%3D%22approval%22%7D"
        _ = try await CLIAgentTests.waitFor(60) {
            guard let answer = await Self.fetch(query), let json = try? JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any],
                  let result = (json["data"] as? [String: Any])?["result"] as? [[String: Any]] else { return false }
            found = Set(result.compactMap { ($0["metric"] as? [String: String])?["account"] })
            return found.count == accounts.count
        }
        #expect(found == Set(accounts.map(\.name)), "Prometheus has \(found)")
        await mock.stop()
    }

    @Test func theShippedAlertingRulesCheckAndTest() throws {
        let box = CLISandbox()
        let rules = Self.root + "/packaging/prometheus"
        let check = try box.run(["check", "rules", rules + "/kisvault-alerts.yml"], tool: "", wrapper: ["/usr/bin/promtool"])
        #expect(check.status == 0 && check.stdout.contains("4 rules found"), "\(check.stdout) \(check.stderr)")
        let test = try box.run(["test", "rules", rules + "/kisvault-alerts.test.yml"], tool: "", wrapper: ["/usr/bin/promtool"], cwd: rules)
        #expect(test.status == 0 && test.stdout.contains("SUCCESS"), "\(test.stdout) \(test.stderr)")
    }

    /// Only a loopback address: the metrics name accounts.
    @Test func metricsOnlyOnLoopback() async throws {
        let box = CLISandbox()
        try await box.initVault()
        for address in ["0.0.0.0:9597", "10.1.2.3:9597", "127.evil.test:9597", "9597"] {
            let r = try await box.runAsync(["agent", "start", "--foreground", "--metrics", address])
            #expect(r.status == 2 && r.stderr.contains("--metrics"), "\(address): \(r.stderr)")
        }
    }
}
