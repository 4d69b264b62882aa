import CSodium
import Foundation

/// Keyed BLAKE2b (`crypto_generichash`), used to derive per-record keys from the master
/// key, to fingerprint appkeys and to chain the audit log.
public enum KeyedHash {
    /// BLAKE2b of `message` under `key`, `length` bytes long (16...64).
    public static func hash(_ message: some ContiguousBytes, key: some ContiguousBytes, length: Int = 32) -> [UInt8] {
        Sodium.ready()
        precondition((16...64).contains(length), "BLAKE2b output must be 16...64 bytes")
        var out = [UInt8](repeating: 0, count: length)
        message.withUnsafeBytes { m in
            key.withUnsafeBytes { k in
                precondition(k.count <= 64, "BLAKE2b key must be at most 64 bytes")
                out.withUnsafeMutableBytes { o in
                    _ = crypto_generichash(
                        o.bindMemory(to: UInt8.self).baseAddress!, length,
                        m.bindMemory(to: UInt8.self).baseAddress, UInt64(m.count),
                        k.bindMemory(to: UInt8.self).baseAddress, k.count)
                }
            }
        }
        return out
    }

    /// BLAKE2b-256 of `message` under a guarded key, written straight into guarded memory:
    /// the result is itself a key and must not sit in ordinary memory.
    public static func deriveKey(from key: SecureBytes, label: String) -> SecureBytes {
        let out = SecureBytes(count: 32)
        deriveKey(from: key, label: label, into: out)
        return out
    }

    /// ``deriveKey(from:label:)`` into an existing 32-byte guarded buffer, for hot paths
    /// that would otherwise map a guarded allocation per derived key.
    public static func deriveKey(from key: SecureBytes, label: String, into out: SecureBytes) {
        Sodium.ready()
        precondition(out.count == 32, "derived keys are 32 bytes")
        let message = Array(label.utf8)
        key.withUnsafeBytes { k in
            out.withUnsafeMutableBytes { o in
                message.withUnsafeBytes { m in
                    _ = crypto_generichash(
                        o.bindMemory(to: UInt8.self).baseAddress!, 32,
                        m.bindMemory(to: UInt8.self).baseAddress, UInt64(m.count),
                        k.bindMemory(to: UInt8.self).baseAddress, k.count)
                }
            }
        }
    }
}
