import CSodium
import Foundation

/// An X25519 key pair that names a member of a vault, and the sealed boxes that carry a key
/// to it (`crypto_box_seal`: an ephemeral X25519 key agreed with the recipient's public
/// key, then XSalsa20-Poly1305; docs/FORMAT.md, "Identities").
///
/// Why `crypto_box_seal`: a key wrapped for a member needs no sender identity (whoever adds
/// a teammate wraps for them with only their recipient, as age does), it is one call on
/// both sides in every libsodium binding, and it authenticates what it carries. Who wrapped
/// it is not proven by the box; the vault's own checks (the key check of what it opens)
/// stand for that.
public struct Identity: Sendable {
    /// Public and secret key sizes: 32 bytes each.
    public static let keyBytes = Int(crypto_box_PUBLICKEYBYTES)
    /// Bytes a sealed box adds to its plaintext: the ephemeral public key and the MAC.
    public static let sealOverhead = Int(crypto_box_sealbytes())

    /// The public key, which ``Recipient`` writes as one line.
    public let publicKey: [UInt8]
    /// The secret key, in guarded memory.
    public let secretKey: SecureBytes

    /// A new key pair from the OS CSPRNG.
    public static func generate() -> Identity {
        Sodium.ready()
        var publicKey = [UInt8](repeating: 0, count: keyBytes)
        let secretKey = SecureBytes(count: keyBytes)
        secretKey.withUnsafeMutableBytes { sk in
            _ = crypto_box_keypair(&publicKey, sk.bindMemory(to: UInt8.self).baseAddress!)
        }
        return Identity(publicKey: publicKey, secretKey: secretKey)
    }

    /// The identity of a stored secret key: its public key is computed from it
    /// (`crypto_scalarmult_base`).
    /// - Throws: ``CryptoError/malformedBlob(length:)`` for a key that is not 32 bytes.
    public init(secretKey: SecureBytes) throws(CryptoError) {
        Sodium.ready()
        guard secretKey.count == Self.keyBytes else { throw .malformedBlob(length: secretKey.count) }
        var publicKey = [UInt8](repeating: 0, count: Self.keyBytes)
        let rc = secretKey.withUnsafeBytes { sk in
            crypto_scalarmult_base(&publicKey, sk.bindMemory(to: UInt8.self).baseAddress!)
        }
        guard rc == 0 else { throw .malformedBlob(length: secretKey.count) }
        self.init(publicKey: publicKey, secretKey: secretKey)
    }

    private init(publicKey: [UInt8], secretKey: SecureBytes) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    public var recipient: Recipient { Recipient(publicKey: publicKey) }

    /// Seals `plaintext` (a key) so that only the holder of `recipient`'s secret key opens it.
    public static func seal(_ plaintext: SecureBytes, to recipient: Recipient) -> Data {
        Sodium.ready()
        var out = Data(count: plaintext.count + sealOverhead)
        out.withUnsafeMutableBytes { o in
            plaintext.withUnsafeBytes { m in
                _ = crypto_box_seal(o.bindMemory(to: UInt8.self).baseAddress!, m.bindMemory(to: UInt8.self).baseAddress!,
                                    UInt64(m.count), recipient.publicKey)
            }
        }
        return out
    }

    /// Opens a box sealed to this identity, into guarded memory.
    /// - Throws: ``CryptoError/authenticationFailed`` for a box sealed to another key or
    ///   altered; ``CryptoError/malformedBlob(length:)`` for one too short to be a box.
    public func open(_ box: some ContiguousBytes) throws(CryptoError) -> SecureBytes {
        let length = box.withUnsafeBytes { $0.count }
        guard length >= Self.sealOverhead else { throw .malformedBlob(length: length) }
        let out = SecureBytes(count: length - Self.sealOverhead)
        let rc: Int32 = box.withUnsafeBytes { c in
            out.withUnsafeMutableBytes { o in
                secretKey.withUnsafeBytes { sk in
                    crypto_box_seal_open(o.bindMemory(to: UInt8.self).baseAddress!, c.bindMemory(to: UInt8.self).baseAddress!,
                                         UInt64(length), publicKey, sk.bindMemory(to: UInt8.self).baseAddress!)
                }
            }
        }
        guard rc == 0 else { throw .authenticationFailed }
        return out
    }
}

/// An identity's public key as a person copies it: `kisvault1` and 58 characters of
/// base32 (RFC 4648's alphabet, lower case, no padding) of the key and a 4-byte checksum
/// (BLAKE2b-256 of `"kisvault recipient v1"` and the key, its first 4 bytes). A mistyped,
/// truncated or lengthened recipient is refused, never taken for another key.
public struct Recipient: Sendable, Hashable, CustomStringConvertible {
    public static let prefix = "kisvault1"
    static let checksumLabel = Array("kisvault recipient v1".utf8)
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    public let publicKey: [UInt8]

    public init(publicKey: [UInt8]) {
        precondition(publicKey.count == Identity.keyBytes, "a recipient is a 32-byte public key")
        self.publicKey = publicKey
    }

    /// Why a text is not a recipient.
    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case prefix, length(Int), character(Character), checksum

        public var description: String {
            switch self {
            case .prefix: "it does not start with \(Recipient.prefix)"
            case .length(let count): "it has \(count) characters after \(Recipient.prefix), not 58: cut short or run on"
            case .character(let c): "'\(c.isASCII && !c.isWhitespace ? String(c) : "\\u{\(c.unicodeScalars.first.map { String($0.value, radix: 16) } ?? "?")}")' is not one of its characters (a-z, 2-7)"
            case .checksum: "its checksum does not match: a character is mistyped"
            }
        }
    }

    /// Reads a recipient as ``description`` writes it (surrounding whitespace ignored).
    public init(parsing text: String) throws(Refusal) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix(Self.prefix) else { throw .prefix }
        let body = trimmed.dropFirst(Self.prefix.count)
        guard body.count == 58 else { throw .length(body.count) }
        var bits = 0, value = 0
        var bytes: [UInt8] = []
        for character in body {
            guard let ascii = character.asciiValue, let digit = Self.alphabet.firstIndex(of: ascii) else { throw .character(character) }
            value = (value << 5) | digit
            bits += 5
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8((value >> bits) & 0xff))
                value &= (1 << bits) - 1
            }
        }
        // 58 characters carry 290 bits: 36 bytes and 2 bits, which must be zero.
        guard bytes.count == 36, value & ((1 << bits) - 1) == 0 else { throw .checksum }
        let key = Array(bytes.prefix(32))
        guard Array(bytes.suffix(4)) == Self.checksum(key) else { throw .checksum }
        self.init(publicKey: key)
    }

    static func checksum(_ key: [UInt8]) -> [UInt8] {
        Array(KeyedHash.hash(checksumLabel + key, key: [UInt8](), length: 32).prefix(4))
    }

    public var description: String {
        let bytes = publicKey + Self.checksum(publicKey)
        var out = Self.prefix
        var bits = 0, value = 0
        for byte in bytes {
            value = (value << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.unicodeScalars.append(Unicode.Scalar(Self.alphabet[(value >> bits) & 31]))
            }
            value &= (1 << bits) - 1
        }
        if bits > 0 { out.unicodeScalars.append(Unicode.Scalar(Self.alphabet[(value << (5 - bits)) & 31])) }
        return out
    }

    /// A short name of the key for listings and audit rows: the first 16 hex digits of
    /// BLAKE2b-256 of the public key.
    public var fingerprint: String {
        hexString(KeyedHash.hash(publicKey, key: [UInt8](), length: 32).prefix(8))
    }
}
