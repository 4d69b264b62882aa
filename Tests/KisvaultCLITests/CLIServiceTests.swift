import Foundation
import KISMock
import KisvaultAgent
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The agent as a systemd service (issue 24): the notify protocol against a datagram socket
/// the test holds as `NOTIFY_SOCKET`, the passphrase from a credential directory, and the
/// unit files in the repository checked by Debian's `systemd-analyze verify`.
@Suite struct CLIServiceTests {
    /// A datagram socket at `path`, read with a deadline.
    final class NotifySocket {
        let fd: Int32
        init(_ path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard bound == 0 else { throw CocoaError(.fileWriteUnknown) }
        }
        deinit { close(fd) }

        /// The next datagram, or nil after `seconds`.
        func next(within seconds: Double) -> String? {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(seconds * 1000)) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
        }
    }

    /// READY=1 only once the socket answers, WATCHDOG=1 at half WatchdogSec, STOPPING=1 on
    /// SIGTERM; the passphrase read from `$CREDENTIALS_DIRECTORY`, none in the environment.
    @Test func theAgentSpeaksSystemdsNotifyProtocol() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        let notify = try NotifySocket(box.dir + "/notify")
        let credentials = box.dir + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        #expect(FileManager.default.createFile(atPath: credentials + "/kisvault-passphrase", contents: Data((CLISandbox.passphrase + "\n").utf8), attributes: [.posixPermissions: 0o400]))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["agent", "start", "--foreground"]
        var environment = box.environment
        environment["KISVAULT_PASSPHRASE"] = nil
        environment["NOTIFY_SOCKET"] = box.dir + "/notify"
        environment["WATCHDOG_USEC"] = "400000"
        environment["CREDENTIALS_DIRECTORY"] = credentials
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var said: [String] = []
        while let message = notify.next(within: 20) {
            said.append(message)
            if message.contains("READY=1") { break }
        }
        let ready = try #require(said.last { $0.contains("READY=1") }, "\(said)")
        #expect(ready.contains("MAINPID=\(process.processIdentifier)"))
        // Ready means serving: the socket answers at once.
        let status = try await CLIAgentTests.get(box, "/v1/status")
        #expect(status.status == 200 && status.json?["locked"] as? Bool == false)
        #expect(try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        var pings = said.filter { $0 == "WATCHDOG=1" }.count
        while pings < 3, let message = notify.next(within: 10) { if message == "WATCHDOG=1" { pings += 1 } }
        #expect(pings >= 3, "watchdog pings")
        kill(process.processIdentifier, SIGTERM)
        var stopping = false
        while !stopping, let message = notify.next(within: 20) { stopping = message.contains("STOPPING=1") }
        process.waitUntilExit()
        #expect(stopping && process.terminationStatus == 0)
        // The credential was read where it is, never copied.
        #expect(try FileManager.default.contentsOfDirectory(atPath: credentials) == ["kisvault-passphrase"])
        await mock.stop()
    }

    /// The unit files pass `systemd-analyze verify` (the system unit as is, the user unit
    /// with `--user`), with ExecStart pointed at the built binary (and the man page, not
    /// installed here, not looked up).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze (make deps installs systemd)"))
    func theUnitFilesVerify() throws {
        let box = CLISandbox()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        for (unit, user) in [("packaging/systemd/kisvault-agent.service", false), ("packaging/systemd/user/kisvault-agent.service", true)] {
            let text = try String(contentsOfFile: root + "/" + unit, encoding: .utf8)
                .replacingOccurrences(of: "/usr/bin/kisvault", with: CLISandbox.binaryDirectory + "/kisvault")
            let dir = box.dir + "/" + (user ? "user" : "system")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let path = dir + "/kisvault-agent.service"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let r = try box.run((user ? ["--user"] : []) + ["verify", "--man=no", path], env: ["XDG_RUNTIME_DIR": dir], tool: "", wrapper: ["/usr/bin/systemd-analyze"])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(unit): \(r.stderr)")
        }
    }
}

extension CLIServiceTests {
    /// `--log-format json`: every line on stderr one JSON object with time, level and event,
    /// the lock's reason as a field, and no secret anywhere.
    @Test func jsonLogsAreOneObjectPerLine() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["agent", "start", "--foreground", "--log-format", "json"]
        process.environment = box.environment
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        #expect(try await CLIAgentTests.waitFor { FileManager.default.fileExists(atPath: CLIAgentTests.socket(box)) })
        #expect(try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
        #expect(try await box.runAsync(["lock"]).status == 0)
        kill(process.processIdentifier, SIGTERM)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = text.split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        #expect(!lines.isEmpty && objects.count == lines.count, "every line JSON: \(text)")
        #expect(objects.allSatisfy { $0["time"] != nil && $0["level"] != nil && $0["event"] != nil })
        #expect(objects.contains { $0["event"] == "serving" && $0["pid"] == String(process.processIdentifier) })
        #expect(objects.contains { $0["event"] == "locked" && $0["reason"] != nil }, "\(objects)")
        for secret in [accounts[0].appkey, accounts[0].appsecret, CLISandbox.passphrase] { #expect(!text.contains(secret)) }
        await mock.stop()
    }
}
