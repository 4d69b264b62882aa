import Foundation
import CredentialService
import VaultStore
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
        let base = environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
            ?? NSTemporaryDirectory()
        var template = Array((base.hasSuffix("/") ? base : base + "/").utf8CString.dropLast()) + Array("kisvault-exec-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw CLIError.io("cannot create a private directory in \(base): \(String(cString: strerror(errno)))") }
        let home = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: home) }
        try write(into: home, environment: environment, account: account, margin: margin)
        var childEnvironment = environment
        childEnvironment["HOME"] = home
        return try spawnAndWait(command, environment: childEnvironment)
    }

    static func write(into home: String, environment env: [String: String], account: String, margin: TimeInterval) throws {
        let config = home + "/KIS/config"
        try TokenFiles.makeDirectory(config)
        guard let environment = env["KIS_ENV"].flatMap(AccountEnvironment.init(rawValue:)), let appkey = env["KIS_APPKEY"],
              let appsecret = env["KIS_APPSECRET"], let token = env["KIS_ACCESS_TOKEN"],
              let expires = env["KIS_ACCESS_TOKEN_EXPIRES_AT"].flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) else {
            throw CLIError.badInput("account '\(account)': the credentials for --kis-sample are incomplete")
        }
        let entry = KISYAMLExport.Entry(name: account, environment: environment, appkey: appkey, appsecret: appsecret,
                                        accountNumber: env["KIS_ACCOUNT_NO"], htsID: env["KIS_HTS_ID"])
        try AtomicFile.write(Data(try KISYAMLExport.text([entry]).utf8), to: config + "/kis_devlp.yaml")
        let file = try TokenFiles.file(format: .kisSample, TokenFiles.Input(account: account, token: token, expiresAt: expires, margin: margin, now: Date()))
        try AtomicFile.write(file.contents, to: config + "/" + file.name)
    }

    /// Starts the command (found on PATH) with SIGINT, SIGTERM and SIGHUP at their
    /// defaults, forwards those signals to it while it runs, and waits for it.
    static func spawnAndWait(_ command: [String], environment: [String: String]) throws -> Int32 {
        let forwarded = [SIGINT, SIGTERM, SIGHUP]
        // Ignored here (the dispatch sources below receive them), default in the child.
        for number in forwarded { signal(number, SIG_IGN) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in forwarded { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
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
