import Foundation
import VaultCrypto

extension Vault {
    /// Lists accounts by name, optionally only those carrying `tag`. Needs no passphrase:
    /// only plaintext metadata is read.
    public func accounts(tag: String? = nil) throws(VaultError) -> [AccountSummary] {
        try readStatement { records in try records.accountSummaries(tag: tag) }
    }

    /// The names of every account (optionally with `tag`), sorted: what `--all` and
    /// `--tag` select, without the metadata.
    public func accountNames(tag: String? = nil) throws(VaultError) -> [String] {
        try read { records in try records.accountNames(tag: tag) }
    }

    /// The metadata of account `name`.
    /// - Throws: ``VaultError/accountNotFound(name:)``.
    public func account(named name: String) throws(VaultError) -> AccountSummary {
        let found = try read { records in try records.accountSummary(named: name) }
        guard let found else { throw .accountNotFound(name: name) }
        return found
    }
}

/// The sealed columns of an account row and their field labels in the key derivation.
public enum AccountField: String, Sendable, CaseIterable {
    case appkey, appsecret, accountNumber = "account_no", htsID = "hts_id"
    static let kind = "account"
}

extension UnlockedVault {
    /// Adds one account.
    /// - Throws: ``VaultError/accountExists(name:)``, ``VaultError/duplicateAppkey(existing:adding:)``,
    ///   ``VaultError/invalidAccount(name:reason:)``, ``VaultError/invalidName(_:reason:)``.
    @discardableResult
    public func addAccount(_ account: NewAccount) throws(VaultError) -> AccountSummary {
        try validate(account)
        return try vault.write { records in
            try insert(records, account, now: Timestamp.string(Date()))
            try audit(records, action: "account.add", account: account.name, detail: "environment=\(account.environment.rawValue)")
            return try records.accountSummary(named: account.name)!
        }
    }

    func validate(_ account: NewAccount) throws(VaultError) {
        try Names.validate(account.name, what: "account name")
        try AccountValidation.checkTagCount(name: account.name, Set(account.tags).count)
        for tag in account.tags { try Names.validate(tag, what: "tag") }
        try AccountValidation.check(name: account.name, appkey: account.secrets.appkey, appsecret: account.secrets.appsecret)
        if let number = account.secrets.accountNumber {
            try AccountValidation.checkAccountNumber(name: account.name, number.utf8String())
        }
        if let hts = account.secrets.htsID { try AccountValidation.checkHTSID(name: account.name, hts) }
    }

    /// Inserts a validated account inside the caller's transaction.
    func insert(_ records: any VaultRecords, _ account: NewAccount, now: String, fingerprint known: Data? = nil) throws {
        if try records.accountSummary(named: account.name) != nil {
            throw VaultError.accountExists(name: account.name)
        }
        let fingerprint = known ?? keys.appkeyFingerprint(account.secrets.appkey)
        if let owner = try records.accountName(withFingerprint: fingerprint, except: nil) {
            throw VaultError.duplicateAppkey(existing: owner, adding: account.name)
        }
        try insertChecked(records, account, now: now, fingerprint: fingerprint)
    }

    /// Inserts `account`, whose name and appkey the caller found free; returns its record.
    @discardableResult
    func insertChecked(_ records: any VaultRecords, _ account: NewAccount, now: String, fingerprint: Data) throws -> SealedAccount {
        // Why a random record id rather than the name: names change (rename) and the id is
        // part of every field key, so it must not.
        let id = hexString(randomBytes(16))
        let s = account.secrets
        let bound = FieldBinding.account(account.environment, account.name)
        let sealed = SealedAccount(id: id, name: account.name, environment: account.environment, appkeyFingerprint: fingerprint,
                                   appkey: seal(s.appkey, id, .appkey, bound), appsecret: seal(s.appsecret, id, .appsecret, bound),
                                   accountNumber: s.accountNumber.map { seal($0, id, .accountNumber, bound) }, htsID: s.htsID.map { seal($0, id, .htsID, bound) })
        try records.insertAccount(sealed, tags: Set(account.tags).sorted(), times: AccountTimes(now: now))
        return sealed
    }

    /// Seals one field of account `id`, its key bound to the account's environment and name
    /// (`binding`): a row renamed outside kisvault no longer opens.
    func seal(_ value: SecureBytes, _ id: String, _ field: AccountField, _ binding: FieldBinding) -> Data {
        keys.seal(value, kind: AccountField.kind, recordID: id, binding: binding, field: field.rawValue)
    }

    /// Opens the secrets of account `name`.
    /// - Throws: ``VaultError/accountNotFound(name:)``;
    ///   ``VaultError/fieldAuthenticationFailed(account:field:)`` when a sealed field was
    ///   altered or moved.
    public func secrets(of name: String) throws(VaultError) -> AccountSecrets {
        let sealed = try vault.read { records in try records.sealedAccount(named: name) }
        guard let sealed else { throw .accountNotFound(name: name) }
        return try openSecrets(sealed)
    }

    func openSecrets(_ sealed: SealedAccount) throws(VaultError) -> AccountSecrets {
        func open(_ field: AccountField) throws(VaultError) -> SecureBytes? {
            guard let blob = sealed.blob(field) else { return nil }
            do {
                return try openField(blob, kind: AccountField.kind, recordID: sealed.id, binding: .account(sealed.environment, sealed.name), field: field.rawValue)
            } catch {
                throw .fieldAuthenticationFailed(account: sealed.name, field: field.rawValue)
            }
        }
        guard let appkey = try open(.appkey), let appsecret = try open(.appsecret) else {
            throw .fieldAuthenticationFailed(account: sealed.name, field: "appkey")
        }
        return AccountSecrets(appkey: appkey, appsecret: appsecret, accountNumber: try open(.accountNumber), htsID: try open(.htsID))
    }

    /// Applies `changes` to account `name`. New credentials are validated and checked
    /// against the one-account-per-appkey rule.
    @discardableResult
    public func editAccount(_ name: String, _ changes: AccountChanges) throws(VaultError) -> AccountSummary {
        try AccountValidation.checkTagCount(name: name, Set(changes.addTags).count)
        for tag in changes.addTags { try Names.validate(tag, what: "tag") }
        if case .some(.some(let hts)) = changes.htsID { try AccountValidation.checkHTSID(name: name, hts) }
        if let credentials = changes.credentials {
            try AccountValidation.check(name: name, appkey: credentials.appkey, appsecret: credentials.appsecret)
        }
        if case .some(.some(let number)) = changes.accountNumber {
            try AccountValidation.checkAccountNumber(name: name, number.utf8String())
        }
        return try vault.write { records in
            guard let current = try records.sealedAccount(named: name) else { throw VaultError.accountNotFound(name: name) }
            let id = current.id
            let now = Timestamp.string(Date())
            var changed: [String] = []
            // The environment is part of every field's key: its fields are re-sealed first,
            // and whatever is written below is sealed for the new one.
            let environment = changes.environment ?? current.environment
            if environment != current.environment {
                try rebind(records, current, environment: environment, name: name)
                try records.updateAccount(id: id, .environment(environment))
                changed.append("environment=\(environment.rawValue)")
            }
            let bound = FieldBinding.account(environment, name)
            if let number = changes.accountNumber {
                try records.updateAccount(id: id, .accountNumber(number.map { seal($0, id, .accountNumber, bound) }))
                changed.append("account_no")
            }
            if let hts = changes.htsID {
                try records.updateAccount(id: id, .htsID(hts.map { seal($0, id, .htsID, bound) }))
                changed.append("hts_id")
            }
            for tag in changes.addTags {
                try records.addTag(tag, to: id)
                changed.append("+tag=\(tag)")
            }
            for tag in changes.removeTags {
                try records.removeTag(tag, from: id)
                changed.append("-tag=\(tag)")
            }
            if let credentials = changes.credentials {
                let fingerprint = keys.appkeyFingerprint(credentials.appkey)
                if let owner = try records.accountName(withFingerprint: fingerprint, except: id) {
                    throw VaultError.duplicateAppkey(existing: owner, adding: name)
                }
                try records.updateAccount(id: id, .appCredentials(fingerprint: fingerprint, appkey: seal(credentials.appkey, id, .appkey, bound),
                                                                  appsecret: seal(credentials.appsecret, id, .appsecret, bound), at: now))
                // New credentials make everything tied to the old appkey meaningless:
                // cached approval keys and tokens, the once-a-minute clock, a "rejected" mark.
                try records.forgetIssued(accountID: id)
                changed.append("appkey+appsecret")
            }
            if !changes.addTags.isEmpty {
                try AccountValidation.checkTagCount(name: name, try records.tagCount(of: id))
            }
            try records.updateAccount(id: id, .touched(now))
            try audit(records, action: "account.edit", account: name, detail: changed.joined(separator: " "))
            return try records.accountSummary(named: name)!
        }
    }

    /// Renames an account. Its name is part of every field's key (and of its stored
    /// credentials'), so they are re-sealed for the new name in the same transaction.
    public func renameAccount(_ old: String, to new: String) throws(VaultError) {
        try Names.validate(new, what: "account name")
        try vault.write { records in
            guard let current = try records.sealedAccount(named: old) else { throw VaultError.accountNotFound(name: old) }
            let id = current.id
            if try records.accountSummary(named: new) != nil { throw VaultError.accountExists(name: new) }
            try rebind(records, current, environment: current.environment, name: new)
            try rebindCredentials(records, accountID: id, from: old, to: new)
            try records.updateAccount(id: id, .name(new))
            try records.updateAccount(id: id, .touched(Timestamp.string(Date())))
            try audit(records, action: "account.rename", account: new, detail: "from=\(old)")
        }
    }

    /// Removes an account and everything stored for it.
    public func removeAccount(_ name: String) throws(VaultError) {
        try vault.write { records in
            guard try records.deleteAccount(named: name) else { throw VaultError.accountNotFound(name: name) }
            try audit(records, action: "account.remove", account: name)
        }
    }
}
