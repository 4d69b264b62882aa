import Foundation
import Testing
import VaultCrypto

/// Identities (issue 23's first part): the X25519 key pair, its recipient line, the boxes
/// sealed to it, and the identity file. The X25519 vectors are RFC 7748's (section 6.1);
/// the recipient line was computed with CPython's base64 and hashlib (BLAKE2b), another
/// code base than libsodium's.
@Suite struct IdentityTests {
    static let alice = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    static let alicePublic = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    static let aliceRecipient = "kisvault1quqpacmjgctvi5elpxolipxxlig36oqney4bv5hlusuy5ku3jzvnixyp2i"

    static func bytes(_ hex: String) -> [UInt8] {
        stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
    }

    static func secret(_ hex: String) -> SecureBytes {
        let out = SecureBytes(count: 32)
        out.withUnsafeMutableBytes { $0.copyBytes(from: bytes(hex)) }
        return out
    }

    @Test func thePublicKeyIsRFC7748s() throws {
        let identity = try Identity(secretKey: Self.secret(Self.alice))
        #expect(hexString(identity.publicKey) == Self.alicePublic)
        let bob = try Identity(secretKey: Self.secret("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(hexString(bob.publicKey) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    }

    @Test func theRecipientLineIsWrittenAndReadBack() throws {
        let recipient = Recipient(publicKey: Self.bytes(Self.alicePublic))
        #expect(recipient.description == Self.aliceRecipient)
        #expect(recipient.fingerprint == "7a91869e4c114964")
        #expect(try Recipient(parsing: "  " + Self.aliceRecipient + "\n") == recipient)
        let fresh = Identity.generate().recipient
        #expect(try Recipient(parsing: fresh.description) == fresh)
    }

    @Test func aMistypedOrCutRecipientIsRefused() {
        let good = Self.aliceRecipient
        #expect(throws: Recipient.Refusal.prefix) { try Recipient(parsing: "age1" + good.dropFirst(9)) }
        #expect(throws: Recipient.Refusal.length(57)) { try Recipient(parsing: String(good.dropLast())) }
        #expect(throws: Recipient.Refusal.length(59)) { try Recipient(parsing: good + "a") }
        #expect(throws: Recipient.Refusal.character("1")) { try Recipient(parsing: String(good.dropLast()) + "1") }
        // Every one-character change of the key's part is caught by the checksum.
        let body = Array(good.dropFirst(9))
        for index in 0..<body.count {
            var changed = body
            changed[index] = changed[index] == "a" ? "b" : "a"
            #expect(throws: Recipient.Refusal.self) { try Recipient(parsing: "kisvault1" + String(changed)) }
        }
    }

    @Test func aSealedBoxOpensOnlyForItsRecipient() throws {
        let member = Identity.generate(), other = Identity.generate()
        let key = SecureBytes.random(count: 32)
        var box = Identity.seal(key, to: member.recipient)
        #expect(box.count == 32 + Identity.sealOverhead)
        #expect(try member.open(box).constantTimeEquals(key))
        #expect(throws: CryptoError.authenticationFailed) { try other.open(box) }
        box[box.count - 1] ^= 1
        #expect(throws: CryptoError.authenticationFailed) { try member.open(box) }
        #expect(throws: CryptoError.malformedBlob(length: 10)) { try member.open(Data(count: 10)) }
        // Two seals of one key differ (a fresh ephemeral key each time).
        #expect(Identity.seal(key, to: member.recipient) != Identity.seal(key, to: member.recipient))
    }

    @Test func anIdentityFileOpensWithItsPassphraseOnly() throws {
        let identity = Identity.generate()
        let text = try IdentityFile.text(identity, passphrase: SecureBytes(utf8: "correct horse"), kdf: .insecureForTesting, created: "2026-12-03T00:00:00Z")
        #expect(text.contains("# recipient: \(identity.recipient)") && !text.contains(IdentityFile.plainTag + " "))
        #expect(try IdentityFile.needsPassphrase(text))
        #expect(try IdentityFile.open(text) { SecureBytes(utf8: "correct horse") }.publicKey == identity.publicKey)
        #expect(throws: IdentityFile.Problem.wrongPassphrase) { try IdentityFile.open(text) { SecureBytes(utf8: "wrong") } }
        #expect(throws: IdentityFile.Problem.needsPassphrase) { try IdentityFile.open(text) { nil } }
        // A file asking Argon2id for more than kisvault ever writes is not one it wrote.
        let line = text.split(separator: "\n").first { $0.hasPrefix(IdentityFile.passphraseTag) }!
        var payload = Data(base64Encoded: String(line.split(separator: " ")[1]))!
        payload[7] = 0x7f
        let greedy = text.replacingOccurrences(of: String(line), with: IdentityFile.passphraseTag + " " + payload.base64EncodedString())
        #expect(throws: IdentityFile.Problem.notAnIdentity) { try IdentityFile.open(greedy) { Issue.record("asked"); return nil } }
    }

    @Test func aMachineIdentityNeedsNoPassphrase() throws {
        let identity = Identity.generate()
        let text = try IdentityFile.text(identity, passphrase: nil, kdf: .insecureForTesting, created: "2026-12-03T00:00:00Z")
        #expect(try !IdentityFile.needsPassphrase(text))
        #expect(try IdentityFile.open(text) { Issue.record("a passphrase was asked"); return nil }.publicKey == identity.publicKey)
        #expect(throws: IdentityFile.Problem.notAnIdentity) { try IdentityFile.open("KISVAULT-IDENTITY-1 c2hvcnQ=\n") { nil } }
        #expect(throws: IdentityFile.Problem.notAnIdentity) { try IdentityFile.open("# nothing here\n") { nil } }
    }
}
