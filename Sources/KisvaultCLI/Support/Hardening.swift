import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide protections applied before any secret is read.
enum Hardening {
    /// Disables core dumps: a crash must not write the master key or a passphrase to disk.
    static func apply() {
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &none)
    }
}
