import CredentialService
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

    /// The unit files pass `systemd-analyze verify` (the system units as they are, the user
    /// units with `--user`; each service with its socket), with ExecStart pointed at the built binary (and the man page, not
    /// installed here, not looked up).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze (make deps installs systemd)"))
    func theUnitFilesVerify() throws {
        let box = CLISandbox()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        for (folder, user) in [("packaging/systemd", false), ("packaging/systemd/user", true)] {
            let dir = box.dir + "/" + (user ? "user" : "system")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            // The service and its socket side by side, as installed: the socket unit is
            // checked against the service it starts.
            var paths: [String] = []
            for unit in ["kisvault-agent.service", "kisvault-agent.socket"] {
                let text = try String(contentsOfFile: root + "/" + folder + "/" + unit, encoding: .utf8)
                    .replacingOccurrences(of: "/usr/bin/kisvault", with: CLISandbox.binaryDirectory + "/kisvault")
                try text.write(toFile: dir + "/" + unit, atomically: true, encoding: .utf8)
                paths.append(dir + "/" + unit)
            }
            let unit = folder
            let r = try box.run((user ? ["--user"] : []) + ["verify", "--man=no"] + paths, env: ["XDG_RUNTIME_DIR": dir], tool: "", wrapper: ["/usr/bin/systemd-analyze"])
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

/// Socket activation (issue 24): the test is systemd. It binds and listens on the agent's
/// socket, connects a client before any agent runs, and starts the agent with the socket as
/// descriptor 3 and `LISTEN_PID`/`LISTEN_FDS` naming it, as systemd's `.socket` units do.
extension CLIServiceTests {
    /// A listening Unix socket at `path`, on a descriptor above the first few (so handing it
    /// over as descriptor 3 really moves it).
    static func listeningSocket(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else { throw CocoaError(.fileWriteUnknown) }
        let high = fcntl(fd, F_DUPFD_CLOEXEC, 50)
        close(fd)
        return high
    }

    /// Starts `kisvault agent start --foreground` as systemd would: `fd` as descriptor 3,
    /// `LISTEN_PID` its own pid (a shell that sets it and execs), `LISTEN_FDS=1`; stdout and
    /// stderr to `log`.
    static func activate(_ box: CLISandbox, fd: Int32, log: String, foreground: Bool = true) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fd, SocketActivationFD.first)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let arguments = ["/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"",
                         CLISandbox.binaryDirectory + "/kisvault", "agent", "start"] + (foreground ? ["--foreground"] : [])
        var environment = box.environment
        environment["LISTEN_FDS"] = "1"
        environment["LISTEN_FDNAMES"] = "agent.sock"
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/sh", &actions, nil, argv, envp) == 0 else { throw CocoaError(.executableLoad) }
        return pid
    }

    enum SocketActivationFD { static let first: Int32 = 3 }

    /// Waits for `pid` to end, for at most `seconds`; its exit status, or nil.
    static func reap(_ pid: pid_t, within seconds: Double) async throws -> Int32? {
        var status: Int32 = 0
        let ended = try await CLIAgentTests.waitFor(seconds) { waitpid(pid, &status, WNOHANG) == pid }
        return ended ? (status >> 8) & 0xff : nil
    }

    @Test func theAgentServesTheSocketSystemdHandsIt() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        let path = CLIAgentTests.socket(box)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = try Self.listeningSocket(path)
        defer { close(fd) }
        // An agent that would detach from the socket handed to it is refused.
        let log = box.dir + "/agent.log"
        let detaching = try Self.activate(box, fd: fd, log: log, foreground: false)
        #expect(try await Self.reap(detaching, within: 20) == 2)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("run it with --foreground"))
        // A client that connects before any agent runs waits in the socket's queue.
        let early = Task { try await CLIAgentTests.get(box, "/v1/status") }
        let pid = try Self.activate(box, fd: fd, log: log)
        let status = try await early.value
        #expect(status.status == 200 && status.json?["locked"] as? Bool == false, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        // kisvault commands find it where they always look, and need no passphrase.
        let get = try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(get.status == 0 && get.stdout.count == 287, "\(get.stderr)")
        // A stopped agent leaves the socket to systemd: still there, still queueing.
        #expect(try await box.runAsync(["agent", "stop"]).status == 0)
        #expect(try await Self.reap(pid, within: 20) == 0)
        let kind = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        #expect(kind == .typeSocket, "the agent removed systemd's socket")
        // The next activation serves the same socket again.
        let again = try Self.activate(box, fd: fd, log: log)
        let second = try await CLIAgentTests.get(box, "/v1/status")
        #expect(second.status == 200)
        kill(again, SIGTERM)
        #expect(try await Self.reap(again, within: 20) == 0)
        #expect(FileManager.default.fileExists(atPath: path))
        await mock.stop()
    }

    /// What systemd might hand over wrongly is refused by name; variables meant for another
    /// process (another `LISTEN_PID`) are ignored and the agent binds its own socket.
    @Test func aBadHandoverIsRefused() async throws {
        let (box, mock, _) = try await CLIAgentTests.setUp(count: 1)
        let notASocket = try await box.runAsync(["agent", "start", "--foreground"], env: ["LISTEN_FDS": "1"],
                                                wrapper: ["/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\" 3</dev/null"], timeout: 30)
        #expect(notASocket.status == 1 && notASocket.stderr.contains("not a listening Unix stream socket"), "\(notASocket.stderr)")
        let two = try await box.runAsync(["agent", "start", "--foreground"], env: ["LISTEN_FDS": "2"],
                                         wrapper: ["/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\" 3</dev/null"], timeout: 30)
        #expect(two.status == 1 && two.stderr.contains("exactly one"), "\(two.stderr)")
        let foreign = try await box.runAsync(["agent", "start"], env: ["LISTEN_PID": "1", "LISTEN_FDS": "1"])
        #expect(foreign.status == 0, "\(foreign.stderr)")
        #expect(try await CLIAgentTests.get(box, "/v1/status").status == 200)
        try await CLIAgentTests.stop(box)
        await mock.stop()
    }
}
