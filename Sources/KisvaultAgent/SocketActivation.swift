import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// systemd's socket activation (`sd_listen_fds(3)`), by hand as ``SystemdNotify`` is: a
/// `.socket` unit binds the agent's socket, starts the service on the first connection and
/// passes the listening socket as descriptor 3, with `LISTEN_PID` (the pid it is for) and
/// `LISTEN_FDS` (how many) in the environment. Connections made before the agent serves
/// wait in the socket's queue instead of failing, and the socket outlives the agent: an
/// agent that stops is started again by the next connection.
public struct SocketActivation: Sendable {
    /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: Int32 = 3

    /// The listening socket handed over.
    public let descriptor: Int32
    /// The path it is bound to, which the agent reports and the CLI connects to.
    public let path: String

    /// The socket systemd handed this process, checked; nil when none was (no `LISTEN_PID`,
    /// or one naming another process: the variables were inherited, not meant for us).
    /// Takes the variables out of the environment, as `sd_listen_fds(1)` does, so nothing
    /// this process starts believes they are its own, and marks the descriptor close-on-exec.
    /// - Throws: ``AgentError/setup(_:)`` for a handover kisvault cannot serve: not exactly one
    ///   descriptor, or one that is not a listening Unix stream socket bound to a path.
    public static func take(environment: [String: String] = ProcessInfo.processInfo.environment) throws(AgentError) -> SocketActivation? {
        guard let pid = environment["LISTEN_PID"], !pid.isEmpty else { return nil }
        guard Int32(pid) == getpid() else { return nil }
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let count = environment["LISTEN_FDS"], Int(count) == 1 else {
            throw .setup("systemd handed the agent other than one socket (LISTEN_FDS is not 1); the agent serves exactly one: give its .socket unit one ListenStream=")
        }
        let fd = firstDescriptor
        guard fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
            throw .setup("systemd said it handed the agent descriptor \(fd), but it is not open")
        }
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        guard option(SO_DOMAIN) == AF_UNIX, option(SO_TYPE) == Int32(SOCK_STREAM.rawValue), option(SO_ACCEPTCONN) == 1 else {
            throw .setup("descriptor \(fd) from systemd is not a listening Unix stream socket: the .socket unit needs ListenStream=/path/to/agent.sock")
        }
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let path = withUnsafeBytes(of: address.sun_path) { raw in
            String(decoding: raw.prefix(Int(length) - MemoryLayout<sa_family_t>.size).prefix { $0 != 0 }, as: UTF8.self)
        }
        guard named == 0, path.hasPrefix("/") else {
            throw .setup("the socket from systemd is not bound to a path (an abstract or unnamed socket); the .socket unit needs ListenStream=/path/to/agent.sock")
        }
        return SocketActivation(descriptor: fd, path: path)
    }
}
