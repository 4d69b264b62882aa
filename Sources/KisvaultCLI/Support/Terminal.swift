import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one place that writes to the terminal: data to stdout, everything else to stderr
/// behind a `kisvault:` prefix (STYLE.md, "Output").
public enum Terminal {
    /// Writes data (a listing, a key) to stdout.
    public static func out(_ text: String) {
        write(1, text.hasSuffix("\n") ? text : text + "\n")
    }

    /// Writes a diagnostic line to stderr with the `kisvault:` prefix.
    public static func note(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        write(2, lines.enumerated().map { $0.offset == 0 ? "kisvault: \($0.element)" : String($0.element) }.joined(separator: "\n") + "\n")
    }

    /// Writes to stderr as is (usage text, progress).
    public static func err(_ text: String) {
        write(2, text.hasSuffix("\n") ? text : text + "\n")
    }

    /// Writes `value` as pretty JSON with sorted, snake_case keys to stdout.
    public static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = try encoder.encode(value)
        out(String(decoding: data, as: UTF8.self))
    }

    /// True when file descriptor `fd` is a terminal.
    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
        bytes.removeAll()
    }
}

/// A plain text table: columns padded to their widest cell. Built with plain appends: it
/// prints 10,000-row listings, where Foundation's padding would dominate the run.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    var out = ""
    out.reserveCapacity((rows.count + 1) * (widths.reduce(0, +) + 2 * widths.count + 1))
    func line(_ cells: [String]) {
        for (i, cell) in cells.enumerated() {
            out += cell
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
