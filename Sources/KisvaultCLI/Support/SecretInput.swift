import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading secrets without putting them in argv, a Swift `String`, or the terminal's echo:
/// every byte goes straight from the file descriptor into guarded memory.
enum SecretInput {
    /// Most bytes a secret source may hold; a passphrase or a pair of KIS credentials is far
    /// smaller, and the cap keeps a wrong `--passphrase-file /dev/zero` from eating memory.
    static let limit = 16 * 1024

    /// Reads everything from `fd` (up to ``limit``) into guarded memory. `source` names it
    /// in messages ("standard input", "--passphrase-fd 3", "passphrase file F").
    static func readAll(fd: Int32, source: String) throws(CLIError) -> SecureBytes {
        if fd <= 2 && StandardStreams.wasClosed(fd) || fcntl(fd, F_GETFD) == -1 {
            throw .passphraseSource("\(source) is not open")
        }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw .passphraseSource("cannot read \(source): it is a directory")
        }
        let buffer = SecureBytes(count: limit)
        var total = 0
        while total < limit {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, limit - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .passphraseSource("cannot read \(source): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += n
        }
        if total == limit { throw .badInput("\(source) holds more than \(limit) bytes: is it the right file?") }
        return slice(buffer, 0, total)
    }

    /// A guarded copy of `buffer[start..<end]`.
    static func slice(_ buffer: SecureBytes, _ start: Int, _ end: Int) -> SecureBytes {
        let out = SecureBytes(count: end - start)
        buffer.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                if end > start { dst.baseAddress!.copyMemory(from: src.baseAddress! + start, byteCount: end - start) }
            }
        }
        return out
    }

    /// Splits guarded bytes into lines (terminator `\n` or `\r\n`, not part of the line).
    static func lines(_ buffer: SecureBytes) -> [SecureBytes] {
        var out: [SecureBytes] = []
        buffer.withUnsafeBytes { bytes in
            var start = 0
            var i = 0
            while i <= bytes.count {
                if i == bytes.count || bytes[i] == 10 {
                    var end = i
                    if end > start && bytes[end - 1] == 13 { end -= 1 }
                    if i < bytes.count || end > start { out.append(slice(buffer, start, end)) }
                    start = i + 1
                }
                i += 1
            }
        }
        return out
    }

    /// The first line of a passphrase source: one trailing newline is not part of the
    /// passphrase (files written by `echo` have one).
    static func firstLine(_ buffer: SecureBytes) -> SecureBytes {
        lines(buffer).first ?? SecureBytes(count: 0)
    }

    /// Reads a passphrase from the file at `path`.
    static func passphrase(file path: String) throws(CLIError) -> SecureBytes {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .passphraseSource("cannot read passphrase file \(path): \(String(cString: strerror(errno)))")
        }
        defer { _ = Glibc.close(fd) }
        return firstLine(try readAll(fd: fd, source: "passphrase file \(path)"))
    }

    /// Reads a passphrase from an inherited file descriptor.
    static func passphrase(fd: Int32) throws(CLIError) -> SecureBytes {
        firstLine(try readAll(fd: fd, source: "--passphrase-fd \(fd)"))
    }

    /// Asks on the controlling terminal with echo off. Nil when there is no terminal.
    static func prompt(_ text: String) throws(CLIError) -> SecureBytes? {
        let tty = Glibc.open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard tty >= 0 else { return nil }
        defer { _ = Glibc.close(tty) }
        var saved = termios()
        let hasTermios = tcgetattr(tty, &saved) == 0
        if hasTermios {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO | ECHONL)
            quiet.c_lflag |= tcflag_t(ICANON)
            _ = tcsetattr(tty, TCSANOW, &quiet)
        }
        defer {
            if hasTermios { var restore = saved; _ = tcsetattr(tty, TCSANOW, &restore) }
        }
        Terminal.write(tty, text)
        let buffer = SecureBytes(count: 4096)
        var count = 0
        var byte: UInt8 = 0
        while count < 4096 {
            let n = Glibc.read(tty, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || byte == 10 { break }
            buffer.withUnsafeMutableBytes { $0[count] = byte }
            count += 1
        }
        byte = 0
        Terminal.write(tty, "\n")
        var end = count
        if end > 0 && buffer.withUnsafeBytes({ $0[end - 1] }) == 13 { end -= 1 }
        return slice(buffer, 0, end)
    }

    /// Asks a question on the controlling terminal with echo on (a yes/no); nil without one.
    static func promptVisible(_ text: String) throws(CLIError) -> String? {
        let tty = Glibc.open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard tty >= 0 else { return nil }
        defer { _ = Glibc.close(tty) }
        Terminal.write(tty, text)
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 256 {
            let n = Glibc.read(tty, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || byte == 10 { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Asks for one credential field on the terminal until it passes `check` (three tries),
    /// so that a mistyped appkey is said at once, not after the appsecret.
    static func promptChecked(_ text: String, tries: Int = 3, check: (SecureBytes) throws(VaultError) -> Void) throws(CLIError) -> SecureBytes? {
        for attempt in 1...tries {
            guard let value = try prompt(text) else { return nil }
            do {
                try check(value)
                return value
            } catch {
                guard attempt < tries else { throw .badInput(error.description) }
                Terminal.note("\(error.description) (\(tries - attempt) tries left)")
            }
        }
        return nil
    }

    /// Reads an appkey/appsecret pair: prompted on a terminal, otherwise the first two
    /// lines of standard input.
    static func credentials(for account: String) throws(CLIError) -> (appkey: SecureBytes, appsecret: SecureBytes) {
        if Terminal.isTerminal(0) {
            guard let key = try promptChecked("appkey for \(account): ", check: { value throws(VaultError) in try AccountValidation.checkAppkey(name: account, value) }),
                  let secret = try promptChecked("appsecret for \(account): ", check: { value throws(VaultError) in try AccountValidation.checkAppsecret(name: account, value) }) else {
                throw .badInput("no terminal to ask for the appkey of '\(account)'; pipe the appkey and appsecret as two lines on standard input")
            }
            return (key, secret)
        }
        guard !StandardStreams.wasClosed(0) else {
            throw .badInput("standard input is closed; account '\(account)': pipe the appkey and appsecret as two lines on standard input")
        }
        let lines: [SecureBytes]
        do { lines = self.lines(try readAll(fd: 0, source: "standard input")) } catch {
            // Standard input is data here, not a passphrase source: a usage problem.
            throw .badInput("account '\(account)': \(error.description)")
        }
        guard lines.count >= 2 else {
            throw .badInput("account '\(account)': expected the appkey and the appsecret as two lines on standard input, got \(lines.count) line\(lines.count == 1 ? "" : "s")")
        }
        return (lines[0], lines[1])
    }
}
