import Foundation

/// The text of an identity file (docs/FORMAT.md, "Identity files"): comment lines (`#`)
/// naming the recipient, then one line holding the secret key, either sealed under a
/// passphrase (a person's) or in clear (a machine's, kept as a 0600 file or a systemd
/// credential):
///
///     KISVAULT-IDENTITY-1-PASSPHRASE <base64: opslimit (8 bytes LE) || memlimit (8 bytes LE) || salt (16) || secretbox(secret key)>
///     KISVAULT-IDENTITY-1 <base64: secret key (32)>
///
/// The secretbox key is Argon2id(passphrase, salt, opslimit, memlimit), 32 bytes, as a
/// keyslot's; the sealed blob is SecretBox's (nonce, MAC, ciphertext).
public enum IdentityFile {
    public static let passphraseTag = "KISVAULT-IDENTITY-1-PASSPHRASE"
    public static let plainTag = "KISVAULT-IDENTITY-1"
    /// The largest identity file read: a few lines.
    public static let maxBytes = 4096

    /// Why an identity file cannot be used.
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// No identity line, or one that does not decode.
        case notAnIdentity
        /// The file is sealed and no passphrase was given.
        case needsPassphrase
        /// The passphrase does not open it (or the file was altered).
        case wrongPassphrase
        case keyDerivationFailed

        public var description: String {
            switch self {
            case .notAnIdentity: "not a kisvault identity file (no \(plainTag) or \(passphraseTag) line that decodes)"
            case .needsPassphrase: "the identity is sealed under a passphrase, and none was given"
            case .wrongPassphrase: "the passphrase does not open this identity (or the file was altered)"
            case .keyDerivationFailed: "the passphrase key could not be derived (not enough memory for Argon2id?)"
            }
        }
    }

    /// The file of `identity`: sealed under `passphrase` with `kdf` when one is given, else
    /// in clear (a machine identity). `created` is written in its comment.
    public static func text(_ identity: Identity, passphrase: SecureBytes?, kdf: KDFParameters, created: String) throws(Problem) -> String {
        var lines = ["# kisvault identity, created \(created)", "# recipient: \(identity.recipient)"]
        if let passphrase {
            let salt = randomBytes(PasswordHash.saltBytes)
            let key: SecureBytes
            do { key = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: kdf) } catch { throw .keyDerivationFailed }
            var payload = Data()
            withUnsafeBytes(of: kdf.opslimit.littleEndian) { payload.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt64(kdf.memlimit).littleEndian) { payload.append(contentsOf: $0) }
            payload.append(contentsOf: salt)
            payload.append(identity.secretKey.withUnsafeBytes { SecretBox.seal($0, key: key) })
            lines.append(passphraseTag + " " + payload.base64EncodedString())
        } else {
            lines.insert("# a machine identity: anyone who can read this file is this member; keep it 0600", at: 1)
            lines.append(plainTag + " " + identity.secretKey.withUnsafeBytes { Data($0) }.base64EncodedString())
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Whether the file's secret key is sealed under a passphrase.
    public static func needsPassphrase(_ text: String) throws(Problem) -> Bool {
        try line(of: text).sealed
    }

    /// The identity in `text`, opened with `passphrase` when it is sealed (asked only then).
    public static func open(_ text: String, passphrase: () throws -> SecureBytes?) throws -> Identity {
        let (sealed, payload) = try line(of: text)
        guard sealed else {
            let secret = SecureBytes(count: payload.count)
            secret.withUnsafeMutableBytes { payload.copyBytes(to: $0) }
            guard let identity = try? Identity(secretKey: secret) else { throw Problem.notAnIdentity }
            return identity
        }
        guard payload.count == 16 + PasswordHash.saltBytes + SecretBox.overhead + Identity.keyBytes else { throw Problem.notAnIdentity }
        let opslimit = payload.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let memlimit = payload.dropFirst(8).prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        // The stored limits are an attacker's to choose: a file asking for more than the
        // strongest strength kisvault writes is not one it wrote.
        guard opslimit >= 1, opslimit <= KDFParameters.sensitive.opslimit, memlimit >= 8192,
              memlimit <= UInt64(KDFParameters.sensitive.memlimit) else { throw Problem.notAnIdentity }
        let salt = Array(payload.dropFirst(16).prefix(PasswordHash.saltBytes))
        guard let passphrase = try passphrase() else { throw Problem.needsPassphrase }
        let key: SecureBytes
        do {
            key = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt,
                                             parameters: KDFParameters(opslimit: opslimit, memlimit: Int(memlimit)))
        } catch { throw Problem.keyDerivationFailed }
        let secret: SecureBytes
        do { secret = try SecretBox.open(payload.dropFirst(16 + PasswordHash.saltBytes), key: key) } catch { throw Problem.wrongPassphrase }
        guard let identity = try? Identity(secretKey: secret) else { throw Problem.notAnIdentity }
        return identity
    }

    private static func line(of text: String) throws(Problem) -> (sealed: Bool, payload: Data) {
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let payload = Data(base64Encoded: String(parts[1])) else { continue }
            switch parts[0] {
            case Substring(passphraseTag): return (true, payload)
            case Substring(plainTag) where payload.count == Identity.keyBytes: return (false, payload)
            default: continue
            }
        }
        throw .notAnIdentity
    }
}
