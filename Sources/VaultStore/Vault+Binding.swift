import Foundation
import VaultCrypto

extension FieldBinding {
    /// The `meta` key saying whether every field of the vault is bound (format 3).
    static let metaKey = "field_binding"
    /// Written by the format-3 migration: fields sealed before it may be unbound.
    static let pending = "pending"
    /// Every field is bound to its account's name (and environment).
    static let done = "bound"
}

/// Format 3 binds each sealed field's key to its account's environment and name, and each
/// issued credential's to its account's name: swapping two rows' `name` columns outside
/// kisvault (psql, sqlite3) makes both fail to open instead of handing one account's
/// secrets out under the other's name. Renames and environment changes re-seal; an older
/// vault is re-sealed once, at its first unlock that can write.
extension UnlockedVault {
    /// Re-seals an older vault's unbound fields and credentials, in one transaction, if the
    /// vault says some may be left; where it cannot write (read-only, busy), they are read
    /// under their old keys for this session and re-sealed at a later unlock.
    func bindFieldsIfPending() {
        guard let state = try? vault.read({ records in try records.metaText(FieldBinding.metaKey) }) else {
            // Format 2 opened read-only (not migrated): every field is unbound.
            legacyFields.set(true)
            return
        }
        guard state != FieldBinding.done else { return }
        legacyFields.set(true)
        do {
            try vault.write { records in
                let accounts = try records.sealedAccounts()
                for account in accounts {
                    try rebind(records, account, environment: account.environment, name: account.name)
                }
                for stored in try records.allCredentials() {
                    try reseal(records, stored, from: stored.account, to: stored.account)
                }
                try records.setMetaText(FieldBinding.metaKey, FieldBinding.done)
                try audit(records, action: "vault.upgrade", detail: "fields of \(accounts.count) accounts bound to their names")
            }
            legacyFields.set(false)
        } catch {
            // Left for the next unlock that can write; read as they are meanwhile.
        }
    }

    /// Re-seals every field of `account` for `environment` and `name` (the account's own
    /// when an older vault is bound), each opened under the account's current binding
    /// (``openField(_:kind:recordID:binding:field:)``: an older vault's, under none).
    func rebind(_ records: any VaultRecords, _ account: SealedAccount, environment: AccountEnvironment, name: String) throws {
        let old = FieldBinding.account(account.environment, account.name)
        let new = FieldBinding.account(environment, name)
        func reseal(_ blob: Data, _ field: AccountField) throws -> Data {
            do {
                return seal(try openField(blob, kind: AccountField.kind, recordID: account.id, binding: old, field: field.rawValue), account.id, field, new)
            } catch {
                throw VaultError.fieldAuthenticationFailed(account: account.name, field: field.rawValue)
            }
        }
        let appkey = try reseal(account.appkey, .appkey), appsecret = try reseal(account.appsecret, .appsecret)
        let number = try account.accountNumber.map { try reseal($0, .accountNumber) }
        let hts = try account.htsID.map { try reseal($0, .htsID) }
        try records.updateAccount(id: account.id, .appCredentials(fingerprint: account.appkeyFingerprint, appkey: appkey, appsecret: appsecret, at: nil))
        try records.updateAccount(id: account.id, .accountNumber(number))
        try records.updateAccount(id: account.id, .htsID(hts))
    }

    /// Re-seals the stored credentials of account `id` from name `old` to `new`.
    func rebindCredentials(_ records: any VaultRecords, accountID id: String, from old: String, to new: String) throws {
        for kind in CredentialKind.allCases {
            for slot in [CredentialSlot.current, .previous] {
                if let stored = try records.credential(accountID: id, kind: kind, slot: slot) {
                    try reseal(records, stored, from: old, to: new)
                }
            }
        }
    }

    /// One stored credential re-sealed in place for account name `new`.
    func reseal(_ records: any VaultRecords, _ stored: StoredCredential, from old: String, to new: String) throws {
        let value: SecureBytes
        do {
            value = try openField(stored.value, kind: stored.kind.rawValue, recordID: stored.recordID, binding: .credential(old), field: "value")
        } catch {
            throw VaultError.fieldAuthenticationFailed(account: old, field: "\(stored.kind.rawValue) \(stored.slot.rawValue)")
        }
        let blob = keys.seal(value, kind: stored.kind.rawValue, recordID: stored.recordID, binding: .credential(new), field: "value")
        try records.replaceCredentialValue(accountID: stored.accountID, kind: stored.kind, slot: stored.slot, value: blob)
    }
}
