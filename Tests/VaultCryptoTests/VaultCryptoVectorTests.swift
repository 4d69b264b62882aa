import Foundation
import Testing
import VaultCrypto

/// Known-answer vectors. The secretbox vectors are the ones other libsodium bindings test
/// against (zero key and nonce); the BLAKE2b-512 vectors are the first entries of the
/// reference implementation's keyed KAT (key 00..3f); the Argon2id and BLAKE2b-256 vectors
/// were computed with independent implementations (the Argon2 reference C code through
/// argon2-cffi, and CPython's hashlib), so libsodium is checked against another code base.
@Suite struct VaultCryptoVectorTests {
    static let zeroKey = SecureBytes(count: 32)
    static let zeroNonce = [UInt8](repeating: 0, count: 24)

    @Test func secretboxKnownAnswerTest() throws {
        let sealed = SecretBox.seal(Array("test".utf8), key: Self.zeroKey, nonce: Self.zeroNonce)
        #expect(Array(sealed.dropFirst(24)) == [175, 153, 180, 147, 246, 123, 253, 41, 159, 169, 32, 114, 64, 251, 167, 179, 178, 91, 200, 139])
        #expect(try SecretBox.open(sealed, key: Self.zeroKey).utf8String() == "test")
    }

    @Test func secretboxSecondKnownAnswer() throws {
        let sealed = SecretBox.seal(Array("yay".utf8), key: Self.zeroKey, nonce: Self.zeroNonce)
        #expect(Array(sealed.dropFirst(24)) == [84, 131, 248, 12, 139, 116, 241, 128, 234, 239, 195, 4, 159, 62, 44, 3, 191, 95, 194])
    }

    @Test func secretboxRejectsFlippedBitWrongKeyAndTruncation() throws {
        let key = SecureBytes.random(count: 32)
        var sealed = SecretBox.seal(Array("appsecret".utf8), key: key)
        #expect(sealed.count == 9 + SecretBox.overhead)
        #expect(throws: CryptoError.authenticationFailed) { try SecretBox.open(sealed, key: SecureBytes.random(count: 32)) }
        sealed[sealed.count - 1] ^= 0x01
        #expect(throws: CryptoError.authenticationFailed) { try SecretBox.open(sealed, key: key) }
        #expect(throws: CryptoError.malformedBlob(length: 20)) { try SecretBox.open(Data(sealed.prefix(20)), key: key) }
        // A truncated nonce shifts every byte: it must fail to authenticate, never decrypt.
        #expect(throws: CryptoError.authenticationFailed) { try SecretBox.open(Data(sealed.dropFirst(1)), key: key) }
    }

    @Test func freshNonceEverySeal() {
        let key = SecureBytes.random(count: 32)
        let a = SecretBox.seal(Array("same".utf8), key: key)
        let b = SecretBox.seal(Array("same".utf8), key: key)
        #expect(a.prefix(24) != b.prefix(24))
        #expect(a != b)
    }

    @Test func blake2bKeyedKAT() {
        let key = Array(UInt8(0)...UInt8(63))
        #expect(hexString(KeyedHash.hash([UInt8](), key: key, length: 64)) ==
            "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568")
        #expect(hexString(KeyedHash.hash([0, 1, 2], key: key, length: 64)) ==
            "33d0825dddf7ada99b0e7e307104ad07ca9cfd9692214f1561356315e784f3e5a17e364ae9dbb14cb2036df932b77f4b292761365fb328de7afdc6d8998f5fc1")
    }

    @Test func blake2b256RecordKeyDerivation() {
        let master = SecureBytes(copying: Array(UInt8(0)...UInt8(31)))
        let derived = KeyedHash.deriveKey(from: master, label: "kisvault/v1/account/0123456789abcdef/appkey")
        #expect(hexString(derived.copyBytes()) == "e66f157778b2e8e69e0235484e878efc1da4575040d23ae2109101e33e5571c7")
    }

    @Test func argon2idKnownAnswers() throws {
        let a = try PasswordHash.deriveKey(
            passphrase: SecureBytes(utf8: "correct horse battery staple"), salt: Array(UInt8(0)...UInt8(15)),
            parameters: KDFParameters(opslimit: 2, memlimit: 8 * 1024 * 1024))
        #expect(hexString(a.copyBytes()) == "a891dd91a3d123add6ea78ceedcc94a7f1dc1e4ca480e57e6f240a113662ea2f")
        let b = try PasswordHash.deriveKey(
            passphrase: SecureBytes(utf8: "kisvault"), salt: Array("saltsaltsaltsalt".utf8),
            parameters: KDFParameters(opslimit: 1, memlimit: 8 * 1024))
        #expect(hexString(b.copyBytes()) == "3c8d22a3318c5d58340ca8590546c4acb904bb2bc61b77edc67047f5c2e760d0")
    }

    @Test func argon2idRejectsBadParameters() {
        #expect(throws: CryptoError.self) {
            try PasswordHash.deriveKey(passphrase: SecureBytes(utf8: "x"), salt: [1, 2, 3], parameters: .insecureForTesting)
        }
        #expect(throws: CryptoError.self) {
            try PasswordHash.deriveKey(passphrase: SecureBytes(utf8: "x"), salt: [UInt8](repeating: 0, count: 16),
                                       parameters: KDFParameters(algorithm: "scrypt", opslimit: 1, memlimit: 8192))
        }
    }

    @Test func constantTimeCompareAndHex() {
        #expect(constantTimeEqual([1, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(!constantTimeEqual([1, 2, 3] as [UInt8], [1, 2, 4] as [UInt8]))
        #expect(!constantTimeEqual([1, 2] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(hexString([0xde, 0xad]) == "dead")
        #expect(KDFParameters.moderate.opslimit == 3 && KDFParameters.moderate.memlimit == 256 * 1024 * 1024)
    }
}
