import CStdStreams
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one place that writes to the terminal: data to stdout, everything else to stderr
/// behind a `kisvault:` prefix (STYLE.md, "Output").
///
/// Two rules hold for everything written here. Every write to stdout is checked: a full
/// disk, a closed pipe or a closed descriptor is an error the command reports, never a
/// silent exit 0. And text that may come from outside (a CSV name, a tag, KIS's messages)
/// is escaped, so no control character reaches the terminal raw (SECURITY.md, "Terminal
/// escapes").
public enum Terminal {
    /// Writes data (a listing, a key) to stdout.
    /// - Throws: ``CLIError/output(_:)`` when stdout is closed or the write fails.
    public static func out(_ text: String) throws(CLIError) {
        if StandardStreams.wasClosed(1) {
            throw .output("standard output is closed; nothing was written: run the command with its output going to a terminal, a file or a pipe")
        }
        if let failure = write(1, text.hasSuffix("\n") ? text : text + "\n") {
            if failure == EPIPE { throw .readerGone }
            throw .output("cannot write to standard output: \(String(cString: strerror(failure)))")
        }
    }

    /// Writes a diagnostic line to stderr with the `kisvault:` prefix. Control characters
    /// are escaped; a continuation line is indented, so text from outside can never pass
    /// for a line of kisvault's own.
    public static func note(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map { index, line in
            let clean = escape(String(line))
            if index == 0 { return "kisvault: " + clean }
            return clean.first.map { $0 == " " } == true || clean.isEmpty ? clean : "  " + clean
        }
        _ = write(2, lines.joined(separator: "\n") + "\n")
    }

    /// Writes to stderr as is (usage text and progress, both kisvault's own).
    public static func err(_ text: String) {
        _ = write(2, text.hasSuffix("\n") ? text : text + "\n")
    }

    /// Writes `value` as pretty JSON with sorted, snake_case keys to stdout. JSON escapes
    /// C0 controls itself; C1 controls are escaped as `\u0080`..`\u009f` here.
    public static func json(_ value: some Encodable) throws {
        try out(jsonText(value))
    }

    /// The text ``json(_:)`` prints.
    static func jsonText(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return escapingControls(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// JSON text with what JSON leaves raw and ``isControl(_:)`` counts as a control (C1,
    /// the bidirectional controls, the line separators) written as `\uXXXX`: the JSON means
    /// the same, and a terminal showing it is not rewritten.
    static func escapingControls(_ text: String) -> String {
        func raw(_ scalar: Unicode.Scalar) -> Bool { scalar.value >= 0x80 && isControl(scalar) }
        guard text.unicodeScalars.contains(where: raw) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if raw(scalar) {
                out.append(contentsOf: String(format: "\\u%04x", scalar.value).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// `text` with every control character (C0, DEL, C1) shown as an escape (`\e`, `\n`,
    /// `\x07`, `\u{9b}`): safe to print on a terminal whatever it held.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else { out.unicodeScalars.append(scalar); continue }
            switch scalar.value {
            case 0x1b: out += "\\e"
            case 0x0a: out += "\\n"
            case 0x0d: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x80: out += String(format: "\\x%02x", scalar.value)
            default: out += String(format: "\\u{%x}", scalar.value)
            }
        }
        return out
    }

    /// C0 and C1 controls, and what reorders or breaks a line on a terminal without being
    /// one: the bidirectional marks, embeddings, overrides (U+202E) and isolates, and the
    /// line and paragraph separators. A name from a database or an import file shown with
    /// U+202E in it would print the rest of its line backwards.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7f...0x9f, 0x061c, 0x200e, 0x200f, 0x2028...0x202e, 0x2066...0x2069: true
        default: false
        }
    }

    /// True when file descriptor `fd` is a terminal.
    public static func isTerminal(_ fd: Int32) -> Bool { !StandardStreams.wasClosed(fd) && isatty(fd) == 1 }

    /// The width of the terminal on `fd` (TIOCGWINSZ), else `COLUMNS`, else 80.
    static func columns(_ fd: Int32) -> Int {
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil } ?? 80
    }

    /// Writes all of `text` to `fd`; the `errno` of a failed write, nil when it all went.
    @discardableResult
    static func write(_ fd: Int32, _ text: String) -> Int32? {
        var bytes = Array(text.utf8)
        defer { bytes.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return nil
    }
}

/// Standard input, output and error as kisvault found them at start.
///
/// A descriptor 0-2 that was closed when kisvault started is filled with `/dev/null` by a
/// C constructor (`CStdStreams`) before the Swift runtime starts: otherwise libdispatch's
/// eventfd, the vault's SQLite file or a socket would be given descriptor 1, and a key
/// "printed to stdout" would be written into it. A filled descriptor is remembered as
/// closed: writing data to it is an error, reading from it says standard input is closed.
public enum StandardStreams {
    /// True when `fd` (0, 1 or 2) was closed when kisvault started.
    public static func wasClosed(_ fd: Int32) -> Bool {
        (0...2).contains(fd) && kisvault_closed_std_fds() & (1 << fd) != 0
    }
}

/// A plain text table: columns padded to their widest cell, every cell escaped. Built
/// with plain appends: it prints 10,000-row listings, where Foundation's padding would
/// dominate the run.
/// Colour where a person reads it: states in green, yellow or red, on a terminal only,
/// never with `NO_COLOR` set or `--no-color` given (decided once, before parsing).
enum Colour {
    nonisolated(unsafe) static var enabled = false

    static func decide(arguments: [String]) {
        let env = ProcessInfo.processInfo.environment
        enabled = Terminal.isTerminal(1) && (env["NO_COLOR"] ?? "").isEmpty && !arguments.contains("--no-color")
            && env["TERM"] != "dumb"
    }

    /// `text` (already escaped) in the colour its state word calls for, if any.
    static func paint(_ text: String, state: String? = nil) -> String {
        guard enabled else { return text }
        let code: String
        switch state ?? text {
        case "fresh", "ok", "issued", "rotated", "unlocked": code = "32"
        case "expiring", "skipped", "in-use", "would-issue", "reissued": code = "33"
        case "failed", "expired", "rejected", "unreachable", "invalid", "locked": code = "31"
        default: return text
        }
        return "\u{1B}[\(code)m" + text + "\u{1B}[0m"
    }
}

/// Rows under a header, columns padded to their widest cell; the cells of `stateColumn`
/// coloured by their state word (``Colour``).
func table(_ header: [String], _ rows: [[String]], stateColumn: Int? = nil) -> String {
    let rows = rows.map { $0.map(Terminal.escape) }
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    var out = ""
    out.reserveCapacity((rows.count + 1) * (widths.reduce(0, +) + 2 * widths.count + 1))
    func line(_ cells: [String]) {
        for (i, cell) in cells.enumerated() {
            out += i == stateColumn && cells != header ? Colour.paint(cell) : cell
            if i < cells.count - 1 {
                out += String(repeating: " ", count: widths[i] - cell.count + 2)
            }
        }
        out += "\n"
    }
    line(header)
    for row in rows { line(row) }
    out.removeLast()
    return out
}
