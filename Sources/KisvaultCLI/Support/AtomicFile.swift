import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writing a file so that readers see the old content or the whole new one, never a part.
enum AtomicFile {
    /// Writes `data` to a 0600 temporary file beside `path`, fsyncs it, and renames it over
    /// `path`. On any failure the temporary file is removed and `path` is untouched.
    static func write(_ data: Data, to path: String) throws(CLIError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .badInput("cannot write \(path): \(String(cString: strerror(errno)))") }
        var ok = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        let savedErrno = errno
        _ = Glibc.close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let e = ok ? errno : savedErrno
            unlink(temporary)
            throw .badInput("cannot write \(path): \(String(cString: strerror(e)))")
        }
    }
}
