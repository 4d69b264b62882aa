import Foundation
import CSodium

/// Errors raised by the cryptographic layer. None of them carries key material or plaintext.
public enum CryptoError: Error, Equatable, Sendable {
    /// A sealed blob did not authenticate under the key it was opened with: wrong key,
    /// a blob moved from another row or field, or a flipped bit.
    case authenticationFailed
    /// A sealed blob is too short to hold a nonce and a MAC.
    case malformedBlob(length: Int)
    /// Argon2id could not run with these parameters (usually: not enough memory).
    case keyDerivationFailed(opslimit: UInt64, memlimit: Int)
    /// libsodium failed to initialise (no usable randomness source).
    case unavailable
}

/// One-time libsodium initialisation. Every public entry point of this module calls
/// `Sodium.ready()` first; `sodium_init` is idempotent and thread-safe, so concurrent
/// first calls are harmless.
enum Sodium {
    private static let initialised: Bool = sodium_init() >= 0

    static func ready() {
        // sodium_init only fails when the OS offers no randomness source; nothing in this
        // program can work then, and going on would produce predictable keys.
        precondition(initialised, "libsodium failed to initialise (no randomness source)")
    }
}

/// Fills a new array with `count` bytes from the OS CSPRNG (`randombytes_buf`).
public func randomBytes(_ count: Int) -> [UInt8] {
    Sodium.ready()
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
    return out
}

/// Compares two byte strings in time that depends only on their length
/// (`sodium_memcmp`); different lengths compare unequal at once (lengths are not secret).
public func constantTimeEqual(_ a: some ContiguousBytes, _ b: some ContiguousBytes) -> Bool {
    Sodium.ready()
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            guard pa.count == pb.count else { return false }
            if pa.count == 0 { return true }
            return sodium_memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0
        }
    }
}

/// Lowercase hexadecimal, for fingerprints and test vectors (never for secrets).
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    // Bytes, not Characters: every stored credential gets a hex record id.
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
