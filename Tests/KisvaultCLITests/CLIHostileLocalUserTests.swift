import Foundation
import KISMock
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The second round of attack (issue 25): what another local user, a killed kisvault or a
/// child that needs its signals still got. Each test is named after its class and runs
/// through the built binary.
@Suite struct CLIHostileLocalUserTests {
    /// Another user needs a uid of its own: tests that play one run as root (as CI does).
    static let canPlayAnotherUser = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    static let nobody: uid_t = 65534

    /// A stand-in agent: listens on `socket`, records every byte it is sent in `record`, and
    /// answers each request with a locked agent's status. With `asUser`, it listens as that
    /// uid (it binds first, so the directory may be root's).
    static let fakeAgent = """
        import os, socket, sys
        path, record, uid = sys.argv[1], sys.argv[2], int(sys.argv[3])
        out = open(record, "ab", buffering=0)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, 0o777)
        if uid >= 0:
            os.setgid(uid); os.setuid(uid)
        s.listen(8)
        print("listening", flush=True)
        body = b'{"locked":true,"vault":"x","kis_urls":{"real":"x","mock":"x"}}'
        while True:
            c, _ = s.accept()
            c.settimeout(2)
            try:
                data = c.recv(65536)
                out.write(data)
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
            except Exception:
                pass
            c.close()
        """

    /// Starts the stand-in agent; `wrapper` runs it as another user from the start.
    static func startFakeAgent(_ box: CLISandbox, socket: String, record: String, dropTo uid: Int, wrapper: [String] = []) async throws -> Process {
        let script = box.write("fake-agent.py", fakeAgent)
        let process = Process()
        let ready = Pipe()
        process.executableURL = URL(fileURLWithPath: wrapper.isEmpty ? "/usr/bin/python3" : wrapper[0])
        process.arguments = Array(wrapper.dropFirst()) + (wrapper.isEmpty ? [] : ["/usr/bin/python3"]) + [script, socket, record, String(uid)]
        process.standardOutput = ready
        process.standardError = FileHandle.nullDevice
        try process.run()
        _ = ready.fileHandleForReading.availableData
        return process
    }

    /// Ends a stand-in for good: SIGKILL, since a child of the test runner inherits its
    /// worker thread's blocked signals and SIGTERM would wait in its mask for ever.
    static func end(_ process: Process) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    static func received(_ record: String) -> String {
        (try? String(contentsOfFile: record, encoding: .utf8)) ?? ""
    }

    // A directory another user made where the default socket goes, and a socket served by
    // another user's process in a directory of ours: nothing is sent to either, above all
    // not a passphrase; `unlock` refuses, and credential commands warn and unlock here.
    @Test(.enabled(if: canPlayAnotherUser)) func anotherUsersAgentSocketGetsNothing() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        // The attacker's directory: theirs, 0777, with their listener in it.
        let theirs = box.dir + "/theirs"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: true)
        chown(theirs, Self.nobody, Self.nobody)
        chmod(theirs, 0o777)
        let record = theirs + "/received"
        let attacker = try await Self.startFakeAgent(box, socket: theirs + "/agent.sock", record: record, dropTo: -1,
                                                     wrapper: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        defer { Self.end(attacker) }
        let env: [String: String?] = ["KISVAULT_AGENT_SOCK": theirs + "/agent.sock"]
        let unlock = try await box.runAsync(["unlock", "--socket", theirs + "/agent.sock"], env: env)
        #expect(unlock.status == 1 && unlock.stderr.contains("belongs to uid 65534"), "\(unlock.stderr)")
        let get = try await box.runAsync(["approval", "get", accounts[0].name], env: env)
        #expect(get.status == 0 && get.stderr.contains("refusing the agent socket"), "\(get.stderr)")
        #expect(mock.requests("/oauth2/Approval") == 1, "the key came from this process, not the stand-in")
        #expect(Self.received(record).isEmpty, "the stand-in was sent: \(Self.received(record).prefix(200))")

        // Our own directory, but the process serving the socket is another user's.
        let ours = box.dir + "/ours"
        try FileManager.default.createDirectory(atPath: ours, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let record2 = box.dir + "/received-2"
        _ = FileManager.default.createFile(atPath: record2, contents: nil)
        let impostor = try await Self.startFakeAgent(box, socket: ours + "/agent.sock", record: record2, dropTo: Int(Self.nobody))
        defer { Self.end(impostor) }
        let second = try await box.runAsync(["unlock", "--socket", ours + "/agent.sock"])
        #expect(second.status == 1 && second.stderr.contains("runs as uid 65534"), "\(second.stderr)")
        let exec = try await box.runAsync(["exec", accounts[0].name, "--", "/bin/true"], env: ["KISVAULT_AGENT_SOCK": ours + "/agent.sock"])
        #expect(exec.status == 0 && exec.stderr.contains("refusing the agent socket"), "\(exec.stderr)")
        #expect(Self.received(record2).isEmpty, "the impostor was sent: \(Self.received(record2).prefix(200))")
        await mock.stop()
    }

    /// The standard signals (1-31) of a /proc mask: glibc reserves 32 and 33 for itself and
    /// refuses to change them, so what they hold is the test runner's, not kisvault's.
    static func standard(_ mask: String?) -> UInt64? {
        mask.flatMap { UInt64($0, radix: 16) }.map { $0 & 0x7fff_ffff }
    }

    /// `SigBlk:` and `SigIgn:` of the process reading its own /proc status.
    static func masks(_ status: String) -> (blocked: String?, ignored: String?) {
        func field(_ name: String) -> String? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
        return (field("SigBlk"), field("SigIgn"))
    }

    // The command kisvault runs gets every signal: none blocked, none ignored, in both
    // ways exec runs it (replaced, and as a child under --kis-sample).
    @Test func childSignalsAreUnblockedAndDefault() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        let replaced = try await box.runAsync(["exec", accounts[0].name, "--", "/bin/cat", "/proc/self/status"])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        let (blocked, ignored) = Self.masks(replaced.stdout)
        #expect(Self.standard(blocked) == 0 && Self.standard(ignored) == 0, "exec: SigBlk \(blocked ?? "?"), SigIgn \(ignored ?? "?")")
        let child = try await box.runAsync(["exec", accounts[0].name, "--kis-sample", "--", "/bin/cat", "/proc/self/status"])
        #expect(child.status == 0, "\(child.stderr)")
        let (childBlocked, childIgnored) = Self.masks(child.stdout)
        #expect(Self.standard(childBlocked) == 0 && Self.standard(childIgnored) == 0, "--kis-sample: SigBlk \(childBlocked ?? "?"), SigIgn \(childIgnored ?? "?")")
        // What that means to a user: `timeout` can stop the command it runs through exec.
        let timed = try await box.runAsync(["exec", accounts[0].name, "--", "/usr/bin/timeout", "1", "/bin/sleep", "20"], timeout: 15)
        #expect(timed.status == 124, "timeout could not stop sleep: status \(timed.status) \(timed.stderr)")
        await mock.stop()
    }

    // kisvault killed with SIGKILL while a --kis-sample command runs: the private HOME
    // (appkey, appsecret, account number, token) is removed by the next kisvault to start.
    @Test func abandonedSampleHomesAreSweptAtTheNextStart() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        let ready = box.dir + "/ready"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
        process.arguments = ["exec", accounts[0].name, "--kis-sample", "--", "/bin/sh", "-c", "echo $$ > \(ready); exec sleep 30"]
        process.environment = box.environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        #expect(try await CLIAgentTests.waitFor { ((try? String(contentsOfFile: ready, encoding: .utf8)) ?? "").hasSuffix("\n") })
        let runDir = box.dir + "/run"
        let homes = { ((try? FileManager.default.contentsOfDirectory(atPath: runDir)) ?? []).filter { $0.hasPrefix("kisvault-exec-") } }
        #expect(homes().count == 1, "the private home while the command runs")
        kill(process.processIdentifier, SIGKILL)
        // The command itself, orphaned (Foundation waits for the descriptors it holds).
        if let pid = pid_t((try String(contentsOfFile: ready, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGKILL) }
        process.waitUntilExit()
        #expect(homes().count == 1, "left behind by SIGKILL")
        let list = try await box.runAsync(["account", "list"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(homes().isEmpty, "swept by the next kisvault: \(homes())")
        await mock.stop()
    }
}

extension CLIHostileLocalUserTests {
    /// `kill -SEGV` (or any crash signal) to the agent: it ends at once, its socket removed,
    /// nothing printed (the runtime's backtrace showed register and memory contents, and
    /// for a signal sent with kill it went back to serving, unlocked).
    @Test func aCrashedAgentEndsAndSaysNothing() async throws {
        let (box, mock, accounts) = try await CLIAgentTests.setUp(count: 1)
        for number in [SIGSEGV, SIGBUS, SIGABRT] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLISandbox.binaryDirectory + "/kisvault")
            process.arguments = ["agent", "start", "--foreground"]
            process.environment = box.environment
            let err = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = err
            try process.run()
            let socket = CLIAgentTests.socket(box)
            #expect(try await CLIAgentTests.waitFor { FileManager.default.fileExists(atPath: socket) })
            #expect(try await box.runAsync(["approval", "get", accounts[0].name], env: ["KISVAULT_PASSPHRASE": nil]).status == 0)
            kill(process.processIdentifier, number)
            let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == number, "signal \(number): \(process.terminationStatus)")
            #expect(!said.contains("Backtrace") && !said.contains("Registers") && !said.contains("rax"), "signal \(number): \(said.suffix(500))")
            #expect(!FileManager.default.fileExists(atPath: socket), "signal \(number): the socket is removed")
        }
        await mock.stop()
    }
}
