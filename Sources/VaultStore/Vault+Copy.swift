import Foundation
import VaultCrypto

/// What `vault copy` copied, and what it found on the destination afterwards.
public struct CopyReport: Sendable, Equatable, Codable {
    public var accounts: Int
    public var keyslots: Int
    public var credentials: Int
    public var auditRows: Int
    /// `doctor`'s findings on the destination (every sealed field opened, the chain walked).
    public var destinationChecks: [DoctorCheck]
}

extension UnlockedVault {
    /// Copies every record of this vault, verbatim, into a new vault at `destination` (a
    /// file path or a `postgres://` URL), in one transaction on the destination: no field
    /// is re-encrypted (the keys derive from the record ids, which are copied), so the
    /// copy opens with the same passphrases. Leases in flight are not copied.
    ///
    /// Afterwards the destination is opened anew and checked: the same counts, an intact
    /// audit chain, every sealed field authenticating.
    ///
    /// - Throws: ``VaultError/vaultExists(path:)`` for a destination that is not empty;
    ///   ``VaultError/damaged(path:detail:)`` when the check of the copy fails.
    public func copy(to destination: String, busyTimeout: Double = EnvironmentSettings.busyTimeout.defaultValue) throws(VaultError) -> CopyReport {
        struct Snapshot {
            var identity: VaultIdentity?
            var head: AuditHead?
            var keyslots: [KeyslotRecord]
            var accounts: [(SealedAccount, AccountSummary)]
            var credentials: [StoredCredential]
            var issuance: [IssuanceRecord]
            var audit: [(AuditRecord, Data)]
            var fieldBinding: String?
        }
        // The source first: a copy of a damaged vault (a broken audit chain, a field that
        // fails to open) would carry the damage, be blamed for it, and be left behind.
        if let failed = secretChecks().first(where: { $0.status == .fail }) {
            throw .damaged(path: vault.path, detail: "the source fails its check '\(failed.check)': \(failed.detail); nothing was copied (run 'kisvault doctor' on it)")
        }
        // One consistent read of the source.
        let source = try vault.read { records -> Snapshot in
            let summaries = Dictionary(uniqueKeysWithValues: try records.accountSummaries(tag: nil).map { ($0.id, $0) })
            var audit: [(AuditRecord, Data)] = []
            try records.forEachAuditRow { audit.append(($0, $1)) }
            return Snapshot(
                identity: try records.identity(), head: try records.auditHead(), keyslots: try records.keyslots(),
                accounts: try records.sealedAccounts().compactMap { sealed in summaries[sealed.id].map { (sealed, $0) } },
                credentials: try records.allCredentials(), issuance: try records.issuanceRecords(), audit: audit,
                fieldBinding: try records.metaText(FieldBinding.metaKey))
        }
        guard let identity = source.identity else { throw .damaged(path: vault.path, detail: "the vault's identity is missing") }
        func populate(_ records: any VaultRecords) throws {
            try records.insertIdentity(identity)
            for slot in source.keyslots { try records.insertKeyslot(slot) }
            for (sealed, summary) in source.accounts {
                try records.insertAccount(sealed, tags: summary.tags, times: AccountTimes(
                    createdAt: summary.createdAt, updatedAt: summary.updatedAt, secretsUpdatedAt: summary.secretsUpdatedAt))
            }
            // Previous first: storing the current one moves the one before it to previous.
            for credential in source.credentials.sorted(by: { $0.slot == .previous && $1.slot == .current }) {
                try records.storeCurrent(credential)
            }
            for record in source.issuance {
                var copied = record
                copied.leaseOwner = nil
                copied.leaseExpiresAt = nil
                try records.insertIssuance(copied)
            }
            for (record, mac) in source.audit { try records.appendAudit(record, mac: mac) }
            if let head = source.head { try records.setAuditHead(head) }
            // The blobs are copied as they are: so is whether they are bound yet.
            try records.setMetaText(FieldBinding.metaKey, source.fieldBinding ?? FieldBinding.pending)
        }
        try VaultKind.of(destination).backend.create(location: destination, busyTimeout: busyTimeout, populate: populate).close()
        // Checked as it now is, through a connection of its own.
        let copied = UnlockedVault(vault: try Vault.open(path: destination, mode: .readOnly, busyTimeout: busyTimeout),
                                   keys: keys, keyslotLabel: keyslotLabel, actor: actor)
        copied.legacyFields.set(legacyFields.isSet)
        defer { copied.vault.close() }
        let counts = try copied.vault.read { records in
            (try records.accountSummaries(tag: nil).count, try records.keyslots().count, try records.allCredentials().count, try records.auditRowCount())
        }
        let report = CopyReport(accounts: counts.0, keyslots: counts.1, credentials: counts.2, auditRows: counts.3,
                                destinationChecks: copied.vault.healthChecks() + copied.secretChecks())
        let expected = (source.accounts.count, source.keyslots.count, source.credentials.count, source.audit.count)
        guard counts == expected else {
            throw .damaged(path: destination, detail: "the copy holds \(counts) accounts/keyslots/credentials/audit rows, the source \(expected)")
        }
        if let failed = report.destinationChecks.first(where: { $0.status == .fail }) {
            throw .damaged(path: destination, detail: "the copy fails its check '\(failed.check)': \(failed.detail)")
        }
        return report
    }
}
