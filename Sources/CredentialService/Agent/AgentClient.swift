import Foundation
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client over the agent's Unix socket: plain POSIX calls, no event
/// loop to start, so `kisvault approval get` through the agent costs one connect, one
/// write and one read.
public enum AgentClient {
    /// The largest answer read from the socket.
    public static let maxAnswerBytes = 16 * 1024 * 1024

    /// An answer from the agent.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        /// The decoded JSON object of the body, if it is one.
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
    }

    /// Sends one request and reads the whole answer.
    /// - Throws: ``AgentError/notRunning(_:)`` when nothing listens at `socket`;
    ///   ``AgentError/protocolError(_:)`` for an answer that is not HTTP.
    /// `body` is sent as is and wiped from this buffer afterwards (it may be a passphrase).
    /// `partial`, when given, sees the head and the body received so far each time more
    /// arrives (a streamed answer, read line by line).
    public static func request(socket path: String, method: String, target: String, headers extra: [String: String] = [:],
                               body: [UInt8] = [], timeout: TimeInterval = 30,
                               partial: ((Response) -> Void)? = nil) throws(AgentError) -> Response {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .notRunning(path) }
        defer { _ = Glibc.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw .setup("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw .notRunning(path) }
        // Nothing is sent (a request may carry a passphrase) until the socket is known to
        // be this user's agent: another local user may have made the directory first and
        // listen there.
        try checkTrusted(socket: path, fd: fd)
        let fields = extra.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
        let head = "\(method) \(target) HTTP/1.1\r\nHost: kisvault-agent\r\nConnection: close\r\n\(fields)Content-Length: \(body.count)\r\n\r\n"
        var out = Array(head.utf8) + body
        defer { out.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; throw .protocolError("the agent closed the connection") }
            sent += n
        }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 { if errno == EINTR { continue }; throw .protocolError("no answer from the agent (timed out)") }
            if n == 0 { break }
            received.append(contentsOf: buffer[0..<n])
            // The agent's answers are a few KiB (a listing of 10,000 accounts about 2 MiB):
            // anything far past that is not our agent.
            guard received.count <= maxAnswerBytes else { throw .protocolError("the agent's answer is larger than \(maxAnswerBytes) bytes") }
            if let parsed = try parse(received) {
                if parsed.complete { return parsed.response }
                partial?(parsed.response)
            }
        }
        guard let parsed = try parse(received) else { throw .protocolError("the agent closed the connection without an answer") }
        return parsed.response
    }

    /// Refuses a socket another user could have put there or serves: its directory must be
    /// a real directory owned by this user (or root) that nobody else can write to, and the
    /// process listening on it (`SO_PEERCRED`) must run as this user (or be root's).
    /// - Throws: ``AgentError/untrusted(_:)``.
    static func checkTrusted(socket path: String, fd: Int32) throws(AgentError) {
        let me = getuid()
        let dir = PathName.directory(of: path)
        var info = stat()
        guard lstat(dir, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw .untrusted("\(dir) is not a directory; not sending anything to the socket in it")
        }
        guard info.st_uid == me || info.st_uid == 0 else {
            throw .untrusted("\(dir) belongs to uid \(info.st_uid), not you (uid \(me)): another user may be listening there; remove it or set KISVAULT_AGENT_SOCK to a socket in a directory of yours")
        }
        // Writable by others only with the sticky bit (as /tmp is), where they cannot replace
        // a socket of ours.
        guard info.st_mode & 0o022 == 0 || (info.st_mode & S_ISVTX != 0 && info.st_uid == 0) else {
            throw .untrusted(String(format: "%@ has mode %03o: others can replace the agent's socket there (chmod 700 it)", dir, info.st_mode & 0o777))
        }
        var peer = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, PeerCredentials.option, &peer, &length) == 0 else {
            throw .untrusted("cannot tell who serves \(path) (SO_PEERCRED: \(String(cString: strerror(errno))))")
        }
        // Root is trusted as the listener: systemd (pid 1, as root) calls listen() on a
        // socket-activated agent's socket, and root can read any user's memory anyway.
        guard peer.uid == me || peer.uid == 0 else {
            throw .untrusted("the process serving \(path) runs as uid \(peer.uid), not you (uid \(me)): not an agent of yours; nothing was sent to it")
        }
    }

    /// Parses what has arrived so far; nil until the head is complete.
    static func parse(_ data: Data) throws(AgentError) -> (response: Response, complete: Bool)? {
        guard let split = data.range(of: Data("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: data[data.startIndex..<split.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw .protocolError("the agent's answer is not HTTP")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(data[split.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var decoded = Data()
            var rest = body[...]
            while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
                let sizeText = String(decoding: rest[rest.startIndex..<lineEnd.lowerBound], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else { break }
                if size == 0 { return (Response(status: status, headers: headers, body: decoded), true) }
                let start = lineEnd.upperBound
                guard rest.distance(from: start, to: rest.endIndex) >= size + 2 else { break }
                decoded.append(rest[start..<rest.index(start, offsetBy: size)])
                rest = rest[rest.index(start, offsetBy: size + 2)...]
            }
            body = decoded
            return (Response(status: status, headers: headers, body: body), false)
        }
        if let length = headers["content-length"].flatMap(Int.init) {
            return (Response(status: status, headers: headers, body: body.prefix(length)), body.count >= length)
        }
        return (Response(status: status, headers: headers, body: body), false)
    }
}

/// Linux's `struct ucred` (pid, uid, gid), which Glibc hides behind `_GNU_SOURCE`; the
/// layout is three 32-bit fields on every Linux architecture.
public struct PeerCredentials: Sendable {
    public var pid: Int32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0

    public init() {}
    /// `SO_PEERCRED`, 17 on Linux (asm-generic/socket.h).
    public static let option: Int32 = 17
}
