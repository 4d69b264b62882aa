import Foundation
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// Who holds an issuance lease: `host:pid:nonce`. A lease of a process on this host that
/// no longer exists is taken over at once; otherwise it expires after the lease duration.
struct LeaseOwner: Sendable, Equatable {
    let text: String

    static func current() -> LeaseOwner {
        let nonce = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return LeaseOwner(text: "\(hostName):\(getpid()):\(nonce)")
    }

    /// This machine's name in lease owners: `KISVAULT_HOST_ID` when set (containers that
    /// share a host name, and tests simulating several machines), else the host name.
    static let hostName: String = {
        if let id = EnvironmentSettings.hostID() { return id }
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// False only when the owner is known dead: same host, and no such process.
    static func isAlive(_ owner: String) -> Bool {
        let parts = owner.split(separator: ":")
        guard parts.count >= 3, String(parts[0]) == hostName, let pid = Int32(parts[1]) else { return true }
        if pid == getpid() { return true }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // A killed process whose parent has not reaped it still answers kill(0): read its
        // state, and count a zombie ("Z") as dead.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).prefix(1)
            if state == "Z" || state == "X" { return false }
        }
        return true
    }
}
