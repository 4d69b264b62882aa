import Foundation
import VaultCrypto

/// The master key and the keys derived from it, held in guarded memory while the vault is
/// unlocked. Every derivation is keyed BLAKE2b-256 under the master key with an ASCII
/// label (docs/FORMAT.md, "Key derivation"), so one 32-byte secret yields independent keys
/// per purpose and per record without storing any of them.
public final class VaultKeys: Sendable {
    let master: SecureBytes
    /// Key for the appkey fingerprint index.
    let index: SecureBytes
    /// Key for the audit chain MACs.
    let audit: SecureBytes

    /// One guarded buffer the field keys are derived into, under a lock: sealing a field
    /// must not cost a guarded allocation (four mappings) each time.
    fileprivate let scratch = SecureBytes(count: 32)
    private let scratchLock = NSLock()
    /// A reused buffer for ``openText(_:kind:recordID:field:)``.
    fileprivate let plaintext = SecureBytes(count: 1024)
    private let plaintextLock = NSLock()

    init(master: SecureBytes) {
        self.master = master
        self.index = KeyedHash.deriveKey(from: master, label: "kisvault/v1/index/appkey")
        self.audit = KeyedHash.deriveKey(from: master, label: "kisvault/v1/audit")
    }

    /// The value stored in `meta.key_check`: proves a keyslot unwrapped this vault's
    /// master key, not one planted from another vault. One-way, so it reveals nothing.
    static func keyCheck(master: SecureBytes) -> [UInt8] {
        master.withUnsafeBytes { KeyedHash.hash(Array("kisvault/v1/key-check".utf8), key: $0) }
    }

    var keyCheck: [UInt8] { Self.keyCheck(master: master) }

    /// The keyed fingerprint of an appkey: equal appkeys give equal fingerprints, and
    /// without the master key the fingerprint cannot be computed or reversed.
    func appkeyFingerprint(_ appkey: SecureBytes) -> Data {
        appkey.withUnsafeBytes { a in index.withUnsafeBytes { Data(KeyedHash.hash(a, key: $0)) } }
    }

    func seal(_ value: SecureBytes, kind: String, recordID: String, binding: FieldBinding, field: String) -> Data {
        value.withUnsafeBytes { seal($0, kind: kind, recordID: recordID, binding: binding, field: field) }
    }

    func seal(_ value: UnsafeRawBufferPointer, kind: String, recordID: String, binding: FieldBinding, field: String) -> Data {
        withFieldKey(kind: kind, recordID: recordID, binding: binding, field: field) { key in SecretBox.seal(value, key: key) }
    }

    func open(_ blob: Data, kind: String, recordID: String, binding: FieldBinding, field: String) throws(CryptoError) -> SecureBytes {
        let result: Result<SecureBytes, CryptoError> = withFieldKey(kind: kind, recordID: recordID, binding: binding, field: field) { key in
            Result { () throws(CryptoError) -> SecureBytes in try SecretBox.open(blob, key: key) }
        }
        return try result.get()
    }

    /// Opens a field straight into a reused guarded buffer and hands out its text; the
    /// buffer is wiped before the lock is released. For values that leave as text at once
    /// (an appkey on its way into a request body).
    func openText(_ blob: Data, kind: String, recordID: String, binding: FieldBinding, field: String) throws(CryptoError) -> String {
        let result: Result<String, CryptoError> = withFieldKey(kind: kind, recordID: recordID, binding: binding, field: field) { key in
            plaintextLock.lock()
            defer {
                plaintext.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                plaintextLock.unlock()
            }
            return Result { () throws(CryptoError) -> String in
                let count = try SecretBox.open(blob, key: key, into: plaintext)
                return plaintext.withUnsafeBytes { String(decoding: $0.prefix(count), as: UTF8.self) }
            }
        }
        return try result.get()
    }

    /// Runs `body` with the key that seals one field of one record in the scratch buffer,
    /// wiped afterwards.
    ///
    /// Why a key per record and field rather than associated data: secretbox has no AD, and
    /// binding the key to "kind/recordID/binding/field" makes a blob copied into another row
    /// or column, or left in a row whose name (or environment) was changed outside
    /// kisvault, fail to open, which is what AD would give us.
    private func withFieldKey<R>(kind: String, recordID: String, binding: FieldBinding, field: String, _ body: (SecureBytes) -> R) -> R {
        scratchLock.lock()
        defer {
            scratch.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
            scratchLock.unlock()
        }
        KeyedHash.deriveKey(from: master, label: binding.label(kind: kind, recordID: recordID, field: field), into: scratch)
        return body(scratch)
    }
}

/// What a sealed field's key binds besides its record and column (docs/FORMAT.md, "Keys").
enum FieldBinding: Sendable {
    /// Format 3: the account's environment and name for its fields (`real/alpha`), its
    /// name for its issued credentials.
    case bound(String)
    /// Formats 1 and 2: the record and column only. Read while a vault's first unlocked
    /// write re-seals its fields; never written.
    case legacy

    /// An account field of account `name` in `environment`.
    static func account(_ environment: AccountEnvironment, _ name: String) -> FieldBinding { .bound("\(environment.rawValue)/\(name)") }
    /// An issued credential of account `name`.
    static func credential(_ name: String) -> FieldBinding { .bound(name) }

    func label(kind: String, recordID: String, field: String) -> String {
        switch self {
        case .bound(let binding): "kisvault/v2/\(kind)/\(recordID)/\(binding)/\(field)"
        case .legacy: "kisvault/v1/\(kind)/\(recordID)/\(field)"
        }
    }
}

extension VaultKeys {
    /// Makes every key inaccessible until ``unprotect()`` (the agent, between requests).
    func protect() {
        for key in [master, index, audit, scratch, plaintext] { key.protect() }
    }

    func unprotect() {
        for key in [master, index, audit, scratch, plaintext] { key.unprotect() }
    }
}
