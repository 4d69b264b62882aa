import Foundation
import GRDB
import VaultTestSupport

/// Runs the built `kisvault` binary as a user would: arguments, a clean environment,
/// standard input from a file, stdout and stderr captured separately
/// (argument-parser's `AssertExecuteCommand` pattern, written locally).
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

final class CLISandbox: @unchecked Sendable {
    let dir: String
    var vault: String { dir + "/vault/vault.db" }
    var environment: [String: String]
    static let passphrase = "correct horse battery staple"

    init() {
        _ = TestLogging.warningsOnly
        dir = NSTemporaryDirectory() + "kisvault-cli-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        // HOME and XDG point into the sandbox: a test can never reach the user's own vault.
        environment = [
            "PATH": "/usr/bin:/bin",
            "HOME": dir + "/home",
            "XDG_DATA_HOME": dir + "/home/.local/share",
            "XDG_RUNTIME_DIR": dir + "/run",
            "KISVAULT_PATH": dir + "/vault/vault.db",
            "KISVAULT_PASSPHRASE": Self.passphrase,
        ]
    }

    deinit {
        // An agent a failed test left running: its command line names this sandbox. Found
        // in /proc and killed directly: a deinit runs on whatever thread drops the last
        // reference, and starting a process from there (Foundation's Process, once pkill)
        // raced the other tests' process launches.
        Self.killProcesses(mentioning: "--socket\u{0}\(dir)/")
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// SIGKILLs every process whose NUL-separated command line contains `needle`.
    static func killProcesses(mentioning needle: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return }
        let wanted = Data(needle.utf8)
        for entry in entries {
            guard let pid = Int32(entry), pid != getpid(),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                  cmdline.range(of: wanted) != nil else { continue }
            kill(pid, SIGKILL)
        }
    }

    static let binaryDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["KISVAULT_BIN_DIR"] { return dir }
        var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            if FileManager.default.isExecutableFile(atPath: url.path + "/kisvault") { return url.path }
            url = url.deletingLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath + "/.build/debug"
    }()

    /// Runs `kisvault ARGS` (or another built tool) and waits for it.
    @discardableResult
    func run(_ arguments: [String], stdin: String = "", env: [String: String?] = [:], tool: String = "kisvault", wrapper: [String] = [],
             timeout: Double = 60, cwd: String? = nil, stdinFile: String? = nil) throws -> CLIResult {
        let id = UUID().uuidString
        let inPath = dir + "/stdin-" + id, outPath = dir + "/stdout-" + id, errPath = dir + "/stderr-" + id
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(stdin.utf8))
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { for p in [inPath, outPath, errPath] { try? FileManager.default.removeItem(atPath: p) } }
        let process = Process()
        let binary = Self.binaryDirectory + "/" + tool
        if wrapper.isEmpty {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: wrapper[0])
            process.arguments = Array(wrapper.dropFirst()) + (tool.isEmpty ? [] : [binary]) + arguments
        }
        var environment = self.environment
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        // Closed here once the child is done: left to deinit, thirty concurrent runs' handles
        // piled up past a thousand descriptors, and Foundation's Process.run crashed.
        let input = FileHandle(forReadingAtPath: stdinFile ?? inPath)
        let output = FileHandle(forWritingAtPath: outPath), errors = FileHandle(forWritingAtPath: errPath)
        defer { for handle in [input, output, errors] { try? handle?.close() } }
        process.standardInput = input
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // A hung child (a prompt nobody answers) must fail the test, not stall the suite.
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return CLIResult(status: -1, stdout: "", stderr: "timed out after \(timeout) s")
        }
        return CLIResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }

    /// ``run(_:stdin:env:tool:wrapper:timeout:)`` on a thread of its own, for async tests: a
    /// blocking wait on Swift's small cooperative pool would starve an in-process mock.
    @discardableResult
    func runAsync(_ arguments: [String], stdin: String = "", env: [String: String?] = [:], tool: String = "kisvault",
                  wrapper: [String] = [], timeout: Double = 60, cwd: String? = nil, stdinFile: String? = nil) async throws -> CLIResult {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    try self.run(arguments, stdin: stdin, env: env, tool: tool, wrapper: wrapper, timeout: timeout, cwd: cwd, stdinFile: stdinFile)
                })
            }
        }
    }

    /// `kisvault init` with the cheapest KDF.
    func initVault() async throws {
        let r = try await runAsync(["init", "--kdf", "insecure-test"])
        precondition(r.status == 0, "init failed: \(r.stderr)")
    }

    static func credentials(_ seed: Int) -> (appkey: String, appsecret: String) { TestAccounts.credentials(seed) }

    @discardableResult
    func addAccount(_ name: String, seed: Int, env: String = "mock", extra: [String] = []) async throws -> CLIResult {
        let (k, s) = Self.credentials(seed)
        return try await runAsync(["account", "add", name, "--env", env] + extra, stdin: "\(k)\n\(s)\n")
    }

    /// Every row of every table: equal dumps mean the vault did not change.
    func dump() throws -> String { try VaultDump.rows(vault) }

    /// Edits the vault file past kisvault, as `sqlite3` would (the tamper tests).
    func tamper(_ body: @escaping @Sendable (Database) throws -> Void) async throws {
        let queue = try DatabaseQueue(path: vault)
        try await queue.write(body)
        try await queue.close()
    }

    struct MountFailed: Error, CustomStringConvertible { var description: String }

    /// A small tmpfs at `dir/small` (root only: the disk-full tests), mode 0700, owned by
    /// `owner`; ``unmount(_:)`` it when done.
    func mountTmpfs(size: String, owner: uid_t? = nil) throws -> String {
        let mount = dir + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: false)
        let options = "size=\(size),mode=0700" + (owner.map { ",uid=\($0)" } ?? "")
        let mounted = try run(["-t", "tmpfs", "-o", options, "tmpfs", mount], tool: "", wrapper: ["/bin/mount"])
        guard mounted.status == 0 else { throw MountFailed(description: "mount: \(mounted.stderr)") }
        return mount
    }

    func unmount(_ mount: String) {
        _ = try? run(["-l", mount], tool: "", wrapper: ["/bin/umount"])
    }

    func write(_ name: String, _ text: String) -> String {
        let path = dir + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }
}
