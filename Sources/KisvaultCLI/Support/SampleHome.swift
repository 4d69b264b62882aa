import ClientFormats
import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `exec --kis-sample`: the command runs as a child with HOME at a private directory that
/// holds what the official sample reads (`KIS/config/kis_devlp.yaml` and today's
/// `KIS/config/KIS<YYYYMMDD>`), and the directory is removed when the child ends, however it
/// ends. What is on disk, and for how long, is in docs/SECURITY.md.
enum SampleHome {
    /// The pid signals are forwarded to (set once, before the handlers are armed).
    nonisolated(unsafe) static var child: pid_t = 0

    /// Writes the directory, runs `command` in it, and returns the exit status to exit
    /// with: the child's, or 128 + the signal that killed it.
    static func run(command: [String], environment: [String: String], account: String, margin: TimeInterval) throws -> Int32 {
        // Abandoned homes were swept when this process started (Kisvault.main).
        let base = directory(environment)
        // The owner's pid is in the name, so a later kisvault can tell an abandoned one.
        var template = Array((base.hasSuffix("/") ? base : base + "/").utf8CString.dropLast()) + Array("\(prefix)\(getpid())-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw CLIError.io("cannot create a private directory in \(base): \(String(cString: strerror(errno)))") }
        let home = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: home) }
        try write(into: home, environment: environment, account: account, margin: margin)
        var childEnvironment = environment
        childEnvironment["HOME"] = home
        return try spawnAndWait(command, environment: childEnvironment)
    }

    static let prefix = "kisvault-exec-"

    /// Where the private homes go: the runtime directory, else `/dev/shm` (memory, never a
    /// disk), else the temporary directory.
    static func directory(_ environment: [String: String]) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty, FileManager.default.fileExists(atPath: runtime) { return runtime }
        var info = stat()
        if stat("/dev/shm", &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, access("/dev/shm", W_OK) == 0 { return "/dev/shm" }
        return NSTemporaryDirectory()
    }

    /// Removes this user's private homes whose kisvault is gone (killed with SIGKILL, or a
    /// crash): `kisvault-exec-PID-XXXXXX` where no process PID runs. Cheap: one directory read.
    static func sweep(_ environment: [String: String]) {
        let base = directory(environment)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for name in names where name.hasPrefix(prefix) {
            let path = (base.hasSuffix("/") ? base : base + "/") + name
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid() else { continue }
            let pidText = name.dropFirst(prefix.count).prefix { $0 != "-" }
            // A name of the old form (no pid) has no owner to ask after: removed too.
            if let pid = pid_t(pidText), pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    static func write(into home: String, environment env: [String: String], account: String, margin: TimeInterval) throws {
        guard let (entry, token) = ExecEnvironment.sampleHome(env, account: account, margin: margin, now: Date()) else {
            throw CLIError.badInput("account '\(account)': the credentials for --kis-sample are incomplete")
        }
        try SampleHomeFiles.write(into: home, account: entry, token: token)
    }

    /// Signals passed on to the command while it runs: each would otherwise end kisvault
    /// before it removes the directory. SIGPIPE is ignored here (the child has its own).
    static let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF]

    /// Starts the command (found on PATH) with no signal blocked and every one at its
    /// default, forwards the catchable ones to it while it runs, and waits for it.
    static func spawnAndWait(_ command: [String], environment: [String: String]) throws -> Int32 {
        // Ignored here (the dispatch sources below receive them), default in the child.
        for number in forwarded { signal(number, SIG_IGN) }
        signal(SIGPIPE, SIG_IGN)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        ChildSignals.configure(&attributes)
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, command[0], nil, &attributes, argv, envp)
        guard spawned == 0 else {
            throw CLIError.badInput("cannot run '\(command[0])': \(String(cString: strerror(spawned)))")
        }
        child = pid
        let sources = forwarded.map { number -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { kill(SampleHome.child, number) }
            source.resume()
            return source
        }
        defer { for source in sources { source.cancel() } }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw CLIError.io("cannot wait for '\(command[0])': \(String(cString: strerror(errno)))") }
        }
        let signalled = status & 0x7f
        return signalled == 0 ? (status >> 8) & 0xff : 128 + signalled
    }
}
