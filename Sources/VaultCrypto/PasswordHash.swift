import CSodium
import Foundation

/// Argon2id cost parameters, stored with every keyslot so that a vault keeps opening
/// after the defaults change.
public struct KDFParameters: Sendable, Equatable, Codable {
    /// Algorithm name as stored in the vault; only `argon2id13` exists today.
    public var algorithm: String
    /// Number of passes over memory (`crypto_pwhash` opslimit).
    public var opslimit: UInt64
    /// Memory in bytes (`crypto_pwhash` memlimit).
    public var memlimit: Int

    public init(algorithm: String = KDFParameters.argon2id, opslimit: UInt64, memlimit: Int) {
        self.algorithm = algorithm
        self.opslimit = opslimit
        self.memlimit = memlimit
    }

    /// The stored algorithm name for Argon2id v1.3.
    public static let argon2id = "argon2id13"

    /// libsodium's INTERACTIVE: 2 passes, 64 MiB.
    public static var interactive: KDFParameters {
        Sodium.ready()
        return KDFParameters(opslimit: UInt64(crypto_pwhash_opslimit_interactive()), memlimit: crypto_pwhash_memlimit_interactive())
    }

    /// libsodium's MODERATE: 3 passes, 256 MiB (about half a second here). The default.
    public static var moderate: KDFParameters {
        Sodium.ready()
        return KDFParameters(opslimit: UInt64(crypto_pwhash_opslimit_moderate()), memlimit: crypto_pwhash_memlimit_moderate())
    }

    /// libsodium's SENSITIVE: 4 passes, 1 GiB.
    public static var sensitive: KDFParameters {
        Sodium.ready()
        return KDFParameters(opslimit: UInt64(crypto_pwhash_opslimit_sensitive()), memlimit: crypto_pwhash_memlimit_sensitive())
    }

    /// The cheapest parameters libsodium accepts (1 pass, 8 KiB). Only for tests, which
    /// create hundreds of vaults; `doctor` flags a keyslot this weak.
    public static var insecureForTesting: KDFParameters {
        Sodium.ready()
        return KDFParameters(opslimit: UInt64(crypto_pwhash_opslimit_min()), memlimit: crypto_pwhash_memlimit_min())
    }

    /// True when the parameters are weaker than INTERACTIVE.
    public var isWeak: Bool {
        let floor = KDFParameters.interactive
        return opslimit < floor.opslimit || memlimit < floor.memlimit
    }
}

/// Argon2id key derivation (`crypto_pwhash` with `crypto_pwhash_ALG_ARGON2ID13`).
public enum PasswordHash {
    /// Salt size: 16 bytes.
    public static let saltBytes = Int(crypto_pwhash_SALTBYTES)

    /// Derives a `length`-byte key from `passphrase` and `salt` into guarded memory.
    /// - Throws: ``CryptoError/keyDerivationFailed(opslimit:memlimit:)`` when libsodium
    ///   refuses the parameters or cannot allocate the memory, and for an unknown algorithm.
    public static func deriveKey(
        passphrase: SecureBytes, salt: [UInt8], parameters: KDFParameters, length: Int = 32
    ) throws(CryptoError) -> SecureBytes {
        Sodium.ready()
        guard parameters.algorithm == KDFParameters.argon2id, salt.count == saltBytes else {
            throw .keyDerivationFailed(opslimit: parameters.opslimit, memlimit: parameters.memlimit)
        }
        let out = SecureBytes(count: length)
        let rc: Int32 = passphrase.withUnsafeBytes { pw in
            out.withUnsafeMutableBytes { o in
                salt.withUnsafeBytes { s in
                    pw.withMemoryRebound(to: CChar.self) { pwc in
                        crypto_pwhash(
                            o.bindMemory(to: UInt8.self).baseAddress!, UInt64(length),
                            pwc.baseAddress!, UInt64(pw.count),
                            s.bindMemory(to: UInt8.self).baseAddress!,
                            parameters.opslimit, parameters.memlimit,
                            crypto_pwhash_alg_argon2id13())
                    }
                }
            }
        }
        guard rc == 0 else {
            throw .keyDerivationFailed(opslimit: parameters.opslimit, memlimit: parameters.memlimit)
        }
        return out
    }
}
