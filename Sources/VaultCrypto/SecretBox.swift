import CSodium
import Foundation

/// Authenticated encryption of one field with `crypto_secretbox` (XSalsa20-Poly1305).
///
/// A sealed blob is `nonce (24 bytes) || MAC (16 bytes) || ciphertext`, exactly the
/// `crypto_secretbox_easy` output with its nonce in front (docs/FORMAT.md, "Sealed blob").
public enum SecretBox {
    /// Key size: 32 bytes.
    public static let keyBytes = Int(crypto_secretbox_KEYBYTES)
    /// Nonce size: 24 bytes.
    public static let nonceBytes = Int(crypto_secretbox_NONCEBYTES)
    /// Authenticator size: 16 bytes.
    public static let macBytes = Int(crypto_secretbox_MACBYTES)
    /// Bytes a sealed blob adds to its plaintext.
    public static let overhead = nonceBytes + macBytes

    /// Seals `plaintext` under `key` with a fresh random nonce.
    ///
    /// Why random nonces: every write is a new encryption, keys are per record and field,
    /// and 24-byte XSalsa20 nonces make a random collision negligible (2^-96 after 2^48
    /// seals under one key), so no nonce counter has to be stored or kept in sync.
    public static func seal(_ plaintext: some ContiguousBytes, key: SecureBytes) -> Data {
        let nonce = randomBytes(nonceBytes)
        return seal(plaintext, key: key, nonce: nonce)
    }

    /// Seals with a caller-chosen nonce. Only for known-answer tests: reusing a nonce under
    /// one key reveals the XOR of two plaintexts and lets an attacker forge MACs.
    public static func seal(_ plaintext: some ContiguousBytes, key: SecureBytes, nonce: [UInt8]) -> Data {
        precondition(key.count == keyBytes, "secretbox key must be 32 bytes")
        precondition(nonce.count == nonceBytes, "secretbox nonce must be 24 bytes")
        return plaintext.withUnsafeBytes { msg in
            var out = Data(count: nonceBytes + macBytes + msg.count)
            out.withUnsafeMutableBytes { dst in
                let base = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
                nonce.withUnsafeBytes { base.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: nonceBytes) }
                key.withUnsafeBytes { k in
                    _ = crypto_secretbox_easy(
                        base + nonceBytes,
                        msg.bindMemory(to: UInt8.self).baseAddress ?? UnsafePointer(base),
                        UInt64(msg.count),
                        base,
                        k.bindMemory(to: UInt8.self).baseAddress!)
                }
            }
            return out
        }
    }

    /// Opens a sealed blob into the start of `buffer` and returns the plaintext length, for
    /// hot paths that reuse one guarded buffer instead of mapping a new one per secret.
    /// - Throws: as ``open(_:key:)``, and ``CryptoError/malformedBlob(length:)`` when the
    ///   plaintext would not fit.
    public static func open(_ blob: some ContiguousBytes, key: SecureBytes, into buffer: SecureBytes) throws(CryptoError) -> Int {
        let length = blob.withUnsafeBytes { $0.count }
        guard length >= overhead, length - overhead <= buffer.count else { throw .malformedBlob(length: length) }
        let rc: Int32 = blob.withUnsafeBytes { src in
            let base = src.bindMemory(to: UInt8.self).baseAddress!
            return key.withUnsafeBytes { k in
                buffer.withUnsafeMutableBytes { dst in
                    crypto_secretbox_open_easy(dst.baseAddress!.assumingMemoryBound(to: UInt8.self), base + nonceBytes,
                                               UInt64(length - nonceBytes), base, k.bindMemory(to: UInt8.self).baseAddress!)
                }
            }
        }
        guard rc == 0 else { throw .authenticationFailed }
        return length - overhead
    }

    /// Opens a sealed blob into guarded memory.
    /// - Throws: ``CryptoError/malformedBlob(length:)`` when the blob is shorter than a
    ///   nonce and a MAC; ``CryptoError/authenticationFailed`` when it does not
    ///   authenticate under `key`.
    public static func open(_ blob: some ContiguousBytes, key: SecureBytes) throws(CryptoError) -> SecureBytes {
        precondition(key.count == keyBytes, "secretbox key must be 32 bytes")
        let length = blob.withUnsafeBytes { $0.count }
        guard length >= overhead else { throw .malformedBlob(length: length) }
        let out = SecureBytes(count: length - overhead)
        let rc: Int32 = blob.withUnsafeBytes { src in
            let base = src.bindMemory(to: UInt8.self).baseAddress!
            return key.withUnsafeBytes { k in
                out.withUnsafeMutableBytes { dst in
                    // The output pointer must be valid even for an empty plaintext; SecureBytes
                    // always allocates at least one byte.
                    crypto_secretbox_open_easy(
                        dst.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        base + nonceBytes,
                        UInt64(length - nonceBytes),
                        base,
                        k.bindMemory(to: UInt8.self).baseAddress!)
                }
            }
        }
        guard rc == 0 else { throw .authenticationFailed }
        return out
    }
}
