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

    init(vault: Vault, keys: VaultKeys, keyslotLabel: String, actor: String) {
        self.vault = vault
        self.keys = keys
        self.keyslotLabel = keyslotLabel
        self.actor = actor
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
