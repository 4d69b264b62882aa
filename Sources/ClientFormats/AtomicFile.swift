import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writing a file so that readers see the old content or the whole new one, never a part.
public enum AtomicFile {
    /// Writes `data` to a 0600 temporary file beside `path`, fsyncs it, and renames it over
    /// `path`. On any failure the temporary file is removed and `path` is untouched.
    ///
    /// Only a regular file is ever replaced: a destination that exists as anything else (a
    /// device such as `/dev/null`, a FIFO, a directory, a socket) or is a symbolic link is
    /// refused, because a rename would replace the node itself, not write through it.
    ///
    /// - Throws: a `bad_request` ``ServiceError`` for a destination that is not a regular file,
    ///   a `vault_error` one when the directory is missing or the write fails.
    /// `dashIsStdout`: the command takes `-` for standard output, and the refusal says so.
    public static func write(_ data: Data, to path: String, dashIsStdout: Bool = false) throws(ServiceError) {
        try checkDestination(path, dashIsStdout: dashIsStdout)
        let name = PathName.base(of: path)
        let directory = PathName.directory(of: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ServiceError(.vaultError, "cannot write \(path): the directory \(directory) does not exist; create it first")
        }
        let temporary = directory + "/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ServiceError(.vaultError, "cannot write \(path): \(String(cString: strerror(errno)))") }
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
        guard ok else {
            unlink(temporary)
            throw ServiceError(.vaultError, "cannot write \(path): \(String(cString: strerror(savedErrno))); nothing was written")
        }
        // Checked again just before the rename: the window in which a device or link could
        // be put in the destination's place is as small as it can be without renameat2.
        do { try checkDestination(path) } catch { unlink(temporary); throw error }
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            throw ServiceError(.vaultError, "cannot write \(path): \(String(cString: strerror(e))); nothing was written")
        }
    }

    /// Refuses a destination that exists and is not a regular file, or is a symbolic link.
    public static func checkDestination(_ path: String, dashIsStdout: Bool = false) throws(ServiceError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        let what: String
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFLNK: what = "a symbolic link"
        case S_IFDIR: what = "a directory"
        case S_IFCHR, S_IFBLK: what = "a device"
        case S_IFIFO: what = "a FIFO"
        case S_IFSOCK: what = "a socket"
        default: what = "not a regular file"
        }
        throw ServiceError(.badRequest, "refusing to write \(path): it is \(what), and only a regular file is replaced; name a regular file" + (dashIsStdout ? ", or '-' for standard output" : ""))
    }
}

extension AtomicFile {
    /// Makes `directory` (0700, with its missing parents) for token files if missing. One that another user owns, or that others (or a
    /// group not one's own) may write without the sticky bit, is refused: they could replace the token file (or
    /// plant one for the client to read) after kisvault wrote it.
    public static func makeTokenDirectory(_ directory: String) throws(ServiceError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ServiceError(.vaultError, "cannot create \(directory): \(error.localizedDescription)")
        }
        var info = stat()
        guard stat(directory, &info) == 0 else { throw ServiceError(.vaultError, "cannot inspect \(directory): \(String(cString: strerror(errno)))") }
        // Group-writable counts only for a group other than one's own (Debian's user private
        // groups make 0775 directories the norm).
        let othersWrite = info.st_mode & S_IWOTH != 0 || (info.st_mode & S_IWGRP != 0 && info.st_gid != getegid())
        let sticky = info.st_mode & S_ISVTX != 0
        if info.st_uid != geteuid() && info.st_uid != 0 {
            throw ServiceError(.badRequest, "refusing to write into \(directory): it belongs to uid \(info.st_uid), who could replace the token file; use a directory of your own")
        }
        if othersWrite && !sticky {
            throw ServiceError(.badRequest, "refusing to write into \(directory): others may write to it (mode \(String(info.st_mode & 0o7777, radix: 8))) and could replace the token file; 'chmod go-w \(directory)' or use another --dir")
        }
    }
}
