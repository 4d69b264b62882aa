import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB

extension SQLiteStorage {
    /// File modes and SQLite's `integrity_check`.
    public func storageChecks() -> [DoctorCheck] {
        var checks = modeChecks()
        do {
            let result = try readDatabase { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            let ok = result == ["ok"]
            checks.append(DoctorCheck(check: "integrity", status: ok ? .ok : .fail,
                                      detail: ok ? "SQLite integrity_check: ok" : result.prefix(5).joined(separator: "; ")))
        } catch {
            checks.append(DoctorCheck(check: "integrity", status: .fail, detail: "\(error)"))
        }
        return checks
    }

    /// A read of the database itself, for what only SQLite can answer.
    func readDatabase<T>(_ body: (Database) throws -> T) throws(VaultError) -> T {
        do {
            return try db.read(body)
        } catch {
            throw Self.translate(error, path: path, busyTimeout: busyTimeout)
        }
    }

    /// File and directory modes, checked where the data really is: a vault path that is a
    /// symbolic link is resolved first, because SQLite keeps `-wal` and `-shm` beside the
    /// file the link points to, and whoever can write *that* directory can replace the
    /// vault or plant a write-ahead log in it.
    func modeChecks() -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let real = Self.resolvedPath(path)
        if real != path {
            checks.append(DoctorCheck(check: "symlink", status: .ok, detail: "\(path) is a link to \(real); checking \(real)"))
        }
        let directory = PathName.directory(of: real)
        var info = stat()
        if stat(directory, &info) == 0 {
            let m = info.st_mode & 0o777
            let writable = m & 0o022 != 0
            let foreignOwner = info.st_uid != getuid() && info.st_uid != 0
            let status: DoctorCheck.Status = writable || foreignOwner ? .fail : m & 0o077 != 0 ? .warn : .ok
            var detail = String(format: "%@ is %03o", directory, m)
            if writable {
                detail += ": others can write it, so they can replace the vault or plant a -wal file beside it; chmod 700 it (or move the vault to a 0700 directory)"
            } else if foreignOwner {
                detail += ", owned by uid \(info.st_uid): its owner can replace the vault; move the vault to a directory of your own"
            } else if m & 0o077 != 0 {
                detail += ": others can list it; use a 0700 directory"
            }
            checks.append(DoctorCheck(check: "directory mode", status: status, detail: detail))
        }
        for suffix in ["", "-wal", "-shm"] {
            var file = stat()
            guard stat(real + suffix, &file) == 0 else { continue }
            let m = file.st_mode & 0o777
            let ok = m & 0o077 == 0
            checks.append(DoctorCheck(check: "file mode\(suffix)", status: ok ? .ok : .fail,
                                      detail: String(format: "%@ is %03o%@", real + suffix, m, ok ? "" : ": readable by others; chmod 600 it")))
        }
        return checks
    }

    /// `path` with every symbolic link resolved (`realpath(3)`), or `path` itself.
    static func resolvedPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A `-wal` beside the vault must be this vault's own. The main file alone (read with
    /// SQLite's `immutable`, which ignores the log) holds the `vault_id` written at `init`,
    /// and no later write changes it; through the log it must be the same. A log left by a
    /// deleted vault shows that vault's id, and its rows, instead.
    public func foreignRecordProblems() -> [String] {
        guard FileManager.default.fileExists(atPath: path + "-wal") else { return [] }
        let viaLog: Data?
        let fileAlone: Data?
        do {
            viaLog = try read { records in try records.identity()?.vaultID }
            let alone = try Self.openImmutable(path: path, busyTimeout: busyTimeout)
            defer { try? alone.close() }
            fileAlone = try alone.read { db in try SQLiteRecords(db: db).identity()?.vaultID }
        } catch {
            // The file changing under the immutable read (a checkpoint) is not a finding.
            return []
        }
        guard let fileAlone, let viaLog, fileAlone != viaLog else { return [] }
        return ["the write-ahead log \(path)-wal belongs to another vault (its vault_id differs from the file's): a vault was deleted while a process had it open and this one was created in its place; what you see is the old vault's rows"]
    }
}
