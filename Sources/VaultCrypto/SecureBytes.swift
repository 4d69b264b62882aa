import Foundation
import CSodium

/// A fixed-size byte buffer for key material and plaintext secrets.
///
/// The bytes live in `sodium_malloc` memory: page-aligned, guarded by inaccessible pages on
/// both sides, locked out of swap where the OS allows (`mlock`), and overwritten with zeros
/// by `sodium_free` when the buffer is released. Copying the bytes out (into a `String`, an
/// `Array`, an HTTP body) escapes that protection, so callers keep such copies short-lived.
///
/// The buffer can be made inaccessible between uses with ``protect()`` (the agent does this
/// with the master key); any access while protected crashes rather than leaking.
public final class SecureBytes: @unchecked Sendable {
    // @unchecked: the pointer is only written at creation; later mutation goes through
    // `withUnsafeMutableBytes`, which callers use only before sharing the buffer.
    private let pointer: UnsafeMutableRawPointer
    /// Number of bytes held.
    public let count: Int
    /// False when the buffer had to fall back to ordinary memory (no guard pages).
    let guarded: Bool

    /// Allocates `count` zeroed bytes of guarded memory.
    public init(count: Int) {
        Sodium.ready()
        let size = max(count, 1)
        // sodium_malloc(0) is valid but we always allocate at least one byte so the pointer
        // is never nil for empty secrets.
        var allocated: UnsafeMutableRawPointer?
        if GuardedBudget.take() {
            allocated = sodium_malloc(size)
            if allocated == nil { GuardedBudget.give() }
        }
        if let p = allocated {
            pointer = p
            guarded = true
        } else {
            // sodium_malloc maps guard pages around every buffer (four mappings each); tens
            // of thousands alive at once (a 10,000-account import) would exhaust the
            // kernel's map count and make unrelated large allocations fail (Argon2id's
            // 256 MiB). Past a budget, use ordinary memory, still locked where allowed and
            // still wiped on release.
            guard let p = malloc(size) else { preconditionFailure("out of memory allocating \(size) bytes") }
            _ = sodium_mlock(p, size)
            pointer = p
            guarded = false
        }
        sodium_memzero(pointer, size)
        self.count = count
    }

    /// Copies `bytes` into guarded memory. The source is not wiped: pass only buffers you
    /// wipe yourself or that never held more than this copy will.
    public convenience init(copying bytes: some ContiguousBytes) {
        let n = bytes.withUnsafeBytes { $0.count }
        self.init(count: n)
        bytes.withUnsafeBytes { src in
            if n > 0 { pointer.copyMemory(from: src.baseAddress!, byteCount: n) }
        }
    }

    /// Copies the UTF-8 bytes of `string` into guarded memory.
    public convenience init(utf8 string: String) {
        self.init(copying: Array(string.utf8))
    }

    /// `count` random bytes from the OS CSPRNG, generated directly in guarded memory.
    public static func random(count: Int) -> SecureBytes {
        let out = SecureBytes(count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return out
    }

    deinit {
        if guarded {
            GuardedBudget.give()
            // sodium_free zeroes the region before unmapping it.
            sodium_free(pointer)
        } else {
            sodium_munlock(pointer, max(count, 1))  // zeroes, then unlocks
            free(pointer)
        }
    }

    /// Read access to the bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Write access to the bytes; use only before the buffer is shared.
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Makes the memory inaccessible (`sodium_mprotect_noaccess`) until ``unprotect()``.
    public func protect() { if guarded { sodium_mprotect_noaccess(pointer) } }

    /// Makes the memory readable and writable again (`sodium_mprotect_readwrite`).
    public func unprotect() { if guarded { sodium_mprotect_readwrite(pointer) } }

    /// The bytes decoded as UTF-8. The returned `String` is ordinary memory that cannot be
    /// wiped: call this only at the edge where a secret must leave as text (an HTTP body,
    /// `--reveal` output), never for logging.
    public func utf8String() -> String {
        withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// A copy of the bytes in ordinary memory; the same caveat as ``utf8String()``.
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time equality with another buffer.
    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in constantTimeEqual(a, b) } }
    }
}

/// How many guarded buffers may be alive at once (each costs about four memory mappings;
/// Linux allows 65,530 per process by default).
enum GuardedBudget {
    static let limit = 4096
    nonisolated(unsafe) private static var live = 0
    private static let lock = NSLock()

    static func take() -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard live < limit else { return false }
        live += 1
        return true
    }

    static func give() {
        lock.lock(); live -= 1; lock.unlock()
    }
}
