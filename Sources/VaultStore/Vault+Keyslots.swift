import Foundation
import VaultCrypto

/// A keyslot as stored: the master key wrapped under one passphrase.
public struct KeyslotRecord: Sendable {
    public var label: String
    public var kdf: KDFParameters
    public var salt: [UInt8]
    /// `SecretBox` blob of the 32-byte master key under the Argon2id-derived key.
    public var wrappedKey: Data
    public var createdAt: String

    public init(label: String, kdf: KDFParameters, salt: [UInt8], wrappedKey: Data, createdAt: String) {
        self.label = label
        self.kdf = kdf
        self.salt = salt
        self.wrappedKey = wrappedKey
        self.createdAt = createdAt
    }

    /// Wraps `master` under a key derived from `passphrase` with a fresh salt.
    ///
    /// Why a fresh salt per slot: two slots with the same passphrase must not share a
    /// derived key, and a precomputed table for one vault must not serve another.
    static func make(label: String, passphrase: SecureBytes, master: SecureBytes, kdf: KDFParameters, now: Date) throws(CryptoError) -> KeyslotRecord {
        let salt = randomBytes(PasswordHash.saltBytes)
        let kek = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: kdf)
        let wrapped = master.withUnsafeBytes { SecretBox.seal($0, key: kek) }
        return KeyslotRecord(label: label, kdf: kdf, salt: salt, wrappedKey: wrapped, createdAt: Timestamp.string(now))
    }

    /// Unwraps the master key, or nil when the passphrase is not this slot's.
    func unwrap(passphrase: SecureBytes) throws(CryptoError) -> SecureBytes? {
        let kek = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: kdf)
        do {
            return try SecretBox.open(wrappedKey, key: kek)
        } catch {
            return nil
        }
    }
}

/// What `keyslot list` shows: no salt, no wrapped key.
public struct KeyslotInfo: Sendable, Codable, Equatable {
    public var label: String
    public var kdf: KDFParameters
    public var createdAt: String
}

extension Vault {
    /// Lists the keyslots (no passphrase needed).
    public func keyslots() throws(VaultError) -> [KeyslotInfo] {
        try read { records in try records.keyslots().map { KeyslotInfo(label: $0.label, kdf: $0.kdf, createdAt: $0.createdAt) } }
    }

    /// Unlocks the vault with `passphrase`, trying the slot labelled `keyslot` or else
    /// every slot in order (each try costs one Argon2id run with that slot's parameters).
    ///
    /// - Throws: ``VaultError/wrongPassphrase(keyslotsTried:)`` when no slot opens;
    ///   ``VaultError/foreignKeyslot(label:)`` when a slot opens to a key that fails the
    ///   vault's key check; ``VaultError/keyslotNotFound(label:)``.
    public func unlock(passphrase: SecureBytes, keyslot: String? = nil, actor: String = currentUserName()) throws(VaultError) -> UnlockedVault {
        let (slots, check) = try read { records in (try records.keyslots(), try records.identity()?.keyCheck) }
        let candidates = keyslot.map { label in slots.filter { $0.label == label } } ?? slots
        if let keyslot, candidates.isEmpty { throw .keyslotNotFound(label: keyslot) }
        guard let check else { throw .damaged(path: path, detail: "the key check value is missing") }
        for slot in candidates {
            let master: SecureBytes?
            do {
                master = try slot.unwrap(passphrase: passphrase)
            } catch {
                throw .io(path: path, detail: "keyslot '\(slot.label)': Argon2id could not run with its parameters (it needs \(slot.kdf.memlimit / (1024 * 1024)) MiB of memory free)")
            }
            guard let master else { continue }
            guard constantTimeEqual(VaultKeys.keyCheck(master: master), check) else {
                throw .foreignKeyslot(label: slot.label)
            }
            let unlocked = UnlockedVault(vault: self, keys: VaultKeys(master: master), keyslotLabel: slot.label, actor: actor)
            unlocked.bindFieldsIfPending()
            return unlocked
        }
        throw .wrongPassphrase(keyslotsTried: candidates.count)
    }
}

extension UnlockedVault {
    /// Adds a keyslot that opens the vault with `passphrase`.
    /// - Throws: ``VaultError/keyslotExists(label:)``, ``VaultError/invalidName(_:reason:)``.
    public func addKeyslot(label: String, passphrase: SecureBytes, kdf: KDFParameters) throws(VaultError) {
        try Names.validate(label, what: "keyslot label")
        let slot: KeyslotRecord
        do {
            slot = try KeyslotRecord.make(label: label, passphrase: passphrase, master: keys.master, kdf: kdf, now: Date())
        } catch {
            throw .io(path: vault.path, detail: "cannot derive the passphrase key: \(error)")
        }
        try vault.write { records in
            if try records.keyslots().contains(where: { $0.label == label }) {
                throw VaultError.keyslotExists(label: label)
            }
            try records.insertKeyslot(slot)
            try audit(records, action: "keyslot.add", detail: "label=\(label)")
        }
    }

    /// Removes a keyslot; never the last one.
    public func removeKeyslot(label: String) throws(VaultError) {
        try vault.write { records in
            let slots = try records.keyslots()
            guard slots.contains(where: { $0.label == label }) else { throw VaultError.keyslotNotFound(label: label) }
            guard slots.count > 1 else { throw VaultError.lastKeyslot(label: label) }
            _ = try records.deleteKeyslot(label: label)
            try audit(records, action: "keyslot.remove", detail: "label=\(label)")
        }
    }

    /// Rewraps the master key in keyslot `label` (default: the slot this vault was
    /// unlocked with) under a new passphrase. O(1): no other row changes.
    public func changePassphrase(label: String? = nil, to passphrase: SecureBytes, kdf: KDFParameters? = nil) throws(VaultError) {
        let label = label ?? keyslotLabel
        let current = try vault.keyslots().first { $0.label == label }
        guard let current else { throw .keyslotNotFound(label: label) }
        let slot: KeyslotRecord
        do {
            slot = try KeyslotRecord.make(label: label, passphrase: passphrase, master: keys.master, kdf: kdf ?? current.kdf, now: Date())
        } catch {
            throw .io(path: vault.path, detail: "cannot derive the passphrase key: \(error)")
        }
        try vault.write { records in
            guard try records.replaceKeyslot(slot) else { throw VaultError.keyslotNotFound(label: label) }
            try audit(records, action: "passphrase.change", detail: "label=\(label)")
        }
    }
}

/// The login name of the user running this process, for the audit log.
public func currentUserName() -> String {
    if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name { return String(cString: name) }
    return "uid:\(geteuid())"
}
