#if canImport(Glibc)
import Glibc
#endif

/// Whether a host is this machine, decided by address: the rule for every connection that
/// may go in clear (plain `http://`/`ws://` to a test KIS server, `sslmode=disable` to
/// PostgreSQL). A name that merely looks like an address (`127.evil.example`, `127.1`) is a
/// name, and a name other than `localhost` is never loopback.
public enum Loopback {
    /// True for a literal loopback address, or `localhost` resolving to loopback only.
    public static func isLoopback(host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let loopback = literalLoopback(bare) { return loopback }
        guard bare == "localhost" || bare == "localhost." else { return false }
        // Resolved now, as the HTTP client will resolve it: every address must be loopback,
        // so an /etc/hosts entry pointing localhost elsewhere is refused.
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, nil, &hints, &list) == 0, let first = list else { return false }
        defer { freeaddrinfo(first) }
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        var any = false
        while let entry = cursor {
            defer { cursor = entry.pointee.ai_next }
            guard let address = entry.pointee.ai_addr else { continue }
            any = true
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let ok = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) >> 24 == 127 }
                if !ok { return false }
            case AF_INET6:
                let ok = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer -> Bool in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
                }
                if !ok { return false }
            default:
                return false
            }
        }
        return any
    }

    /// For an IP literal: whether it is loopback. Nil for anything that is not a literal
    /// in the strict forms `inet_pton` accepts (so `127.1` or `0x7f.1` are names, refused).
    public static func literalLoopback(_ host: String) -> Bool? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: v6) { $0.prefix(15).allSatisfy { $0 == 0 } && $0[15] == 1 }
        }
        return nil
    }
}
