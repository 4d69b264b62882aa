import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// systemd's notify protocol (`Type=notify`): `READY=1` once the agent serves, `STOPPING=1`
/// when it stops, `WATCHDOG=1` every half `WatchdogSec`. One datagram of `KEY=VALUE` lines to
/// the socket in `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace): written
/// here in a few lines rather than linking libsystemd for them. Without `$NOTIFY_SOCKET`
/// (not run by systemd) every call does nothing.
public struct SystemdNotify: Sendable {
    let socket: String?
    /// Half the watchdog interval, when systemd asked for pings (`WATCHDOG_USEC`, for this
    /// process if `WATCHDOG_PID` names one).
    public let watchdogPing: TimeInterval?

    public init(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        socket = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let text = environment["WATCHDOG_USEC"], let micros = Double(text), micros.isFinite, micros > 0, micros <= 3600e6 {
            watchdogPing = micros / 2e6
        } else {
            watchdogPing = nil
        }
    }

    public func ready() { send("READY=1\nMAINPID=\(getpid())\nSTATUS=serving") }
    public func stopping() { send("STOPPING=1") }
    public func watchdog() { send("WATCHDOG=1") }

    /// Sends `text` as one datagram; a failure is ignored (systemd then acts on its own
    /// timeouts, which is what it would do without the message).
    func send(_ text: String) {
        guard let socket else { return }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socket.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // the abstract namespace
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL), $0, length) }
        }
    }
}
