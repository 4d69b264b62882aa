import Foundation
import VaultCrypto

/// A vault whose master key is in memory: secrets can be read and written.
///
/// Every change goes through one IMMEDIATE transaction together with its audit entry, so
/// the log and the data can never disagree.
public final class UnlockedVault: Sendable {
    /// The underlying vault (metadata access, path).
    public let vault: Vault
    let keys: VaultKeys
    /// The keyslot that opened the vault, recorded in the audit log.
    public let keyslotLabel: String
    /// The OS user, recorded in the audit log.
    public let actor: String
    /// Whether fields sealed by format 2 (not bound to names) may still be here: only while
    /// a vault's first unlocked write has not re-sealed them (a read-only open).
    let legacyFields = LegacyFlag()

    init(vault: Vault, keys: VaultKeys, keyslotLabel: String, actor: String) {
        self.vault = vault
        self.keys = keys
        self.keyslotLabel = keyslotLabel
        self.actor = actor
    }

    /// Opens a sealed field under its binding; while ``legacyFields`` is set, one sealed
    /// before fields were bound opens under its format-2 key.
    func openField(_ blob: Data, kind: String, recordID: String, binding: FieldBinding, field: String) throws(CryptoError) -> SecureBytes {
        try withLegacyFallback(binding) { (b) throws(CryptoError) in try keys.open(blob, kind: kind, recordID: recordID, binding: b, field: field) }
    }

    /// ``openField(_:kind:recordID:binding:field:)`` as text, through the reused buffer.
    func openFieldText(_ blob: Data, kind: String, recordID: String, binding: FieldBinding, field: String) throws(CryptoError) -> String {
        try withLegacyFallback(binding) { (b) throws(CryptoError) in try keys.openText(blob, kind: kind, recordID: recordID, binding: b, field: field) }
    }

    private func withLegacyFallback<T>(_ binding: FieldBinding, _ open: (FieldBinding) throws(CryptoError) -> T) throws(CryptoError) -> T {
        do {
            return try open(binding)
        } catch {
            guard legacyFields.isSet else { throw error }
            return try open(.legacy)
        }
    }

    /// Appends an audit entry inside the caller's transaction.
    func audit(_ records: any VaultRecords, action: String, account: String? = nil, outcome: AuditEntry.Outcome = .ok, detail: String = "") throws {
        try AuditLog.append(records, keys: keys, entry: auditEntry(action: action, account: account, outcome: outcome, detail: detail))
    }

    /// An entry by this vault's actor and keyslot.
    func auditEntry(action: String, account: String? = nil, outcome: AuditEntry.Outcome = .ok, detail: String = "") -> AuditEntry {
        AuditEntry(actor: actor, keyslot: keyslotLabel, action: action, account: account, outcome: outcome, detail: detail)
    }

    /// Records an audit entry in a transaction of its own (for events with no data
    /// change, such as revealing a secret or a failed issuance).
    public func recordAudit(action: String, account: String? = nil, outcome: AuditEntry.Outcome = .ok, detail: String = "") throws(VaultError) {
        try vault.write { records in try audit(records, action: action, account: account, outcome: outcome, detail: detail) }
    }
}

/// A flag set and read under a lock.
final class LegacyFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set(_ new: Bool) { lock.withLock { value = new } }
}

/// Rules for account names, tags and keyslot labels: short, printable, shell-safe, and
/// never mistaken for an option.
public enum Names {
    public static func validate(_ name: String, what: String) throws(VaultError) {
        let allowed = name.utf8.allSatisfy { c in
            (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == 45 || c == 46 || c == 95 || c == 64
        }
        guard !name.isEmpty, name.utf8.count <= 64 else {
            throw .invalidName(name, reason: "a \(what) must be 1 to 64 characters")
        }
        guard allowed else {
            throw .invalidName(name, reason: "a \(what) may hold only letters, digits, '.', '_', '-' and '@'")
        }
        guard name.first != "-", name.first != "." else {
            throw .invalidName(name, reason: "a \(what) must not start with '-' or '.'")
        }
    }
}

extension UnlockedVault {
    /// Makes the master key and every key derived from it inaccessible
    /// (`sodium_mprotect_noaccess`): any use before ``unprotectKeys()`` crashes instead of
    /// reading them. The agent keeps its keys so between requests.
    public func protectKeys() { keys.protect() }

    /// Makes the keys usable again.
    public func unprotectKeys() { keys.unprotect() }
}
