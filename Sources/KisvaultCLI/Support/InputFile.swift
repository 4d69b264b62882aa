import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading an input file or standard input whole, but never more than a limit: a wrong
/// file (`/dev/zero`, a 200 MB log piped in) is refused after reading at most the limit,
/// not after reading it all.
enum InputFile {
    /// Largest account file `account import` reads (10,000 accounts are about 3 MiB).
    static let maxImportBytes = 32 * 1024 * 1024

    /// Reads `path` (nil: standard input), at most `limit` bytes.
    /// - Throws: ``CLIError/badInput(_:)`` naming the file and the limit, or saying that
    ///   standard input is closed; ``CLIError/io(_:)`` when the file cannot be read.
    static func read(_ path: String?, limit: Int, what: String) throws(CLIError) -> Data {
        let fd: Int32
        let name = path ?? "standard input"
        if let path {
            fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .io("cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
        } else {
            guard !StandardStreams.wasClosed(0) else {
                throw .badInput("standard input is closed; pipe the \(what) in, or name the file instead of '-'")
            }
            fd = 0
        }
        defer { if path != nil { _ = Glibc.close(fd) } }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw .badInput("cannot read \(what) \(name): it is a directory")
        }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("cannot read \(what) \(name): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return data }
            guard data.count + n <= limit else {
                throw .badInput("the \(what) \(name) is larger than \(limit / (1024 * 1024)) MiB; is it the right file?")
            }
            data.append(contentsOf: chunk[0..<n])
        }
    }
}
