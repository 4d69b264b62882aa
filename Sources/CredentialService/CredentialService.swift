import Foundation
import KeyManager
import VaultCrypto
import VaultStore

/// What needs the vault's key: a credential valid for a while, invalidation, revocation,
/// an account's app credentials, bulk issue and rotate. Answered by a process that holds
/// the key: ``LocalCredentialService`` here, or a running agent through
/// ``AgentCredentialService`` (a typed client of its socket, which serves the same answers
/// from a ``LocalCredentialService`` of its own). Answers are the Codable types of this
/// module, which are also the agent's wire format. Errors carry an ``ErrorCode``
/// (``ErrorCode/of(_:)``).
///
/// Call ``close()`` when done: it releases the KIS client's connections.
public protocol KeyedCredentials: Sendable {
    /// The KIS URLs credentials from this service are for.
    var kisURLs: KISURLs { get }
    /// A credential of `kind` valid for at least `minTTL` seconds: the stored one, or one
    /// issued now (once across every process using the vault).
    func credential(_ kind: CredentialKind, account: String, minTTL: TimeInterval) async throws -> CredentialAnswer
    /// A program found `deadToken` refused by KIS: forget it if it is still the stored one
    /// and answer the token to use now (ten reports of one dead token cause one issuance).
    func invalidateToken(account: String, deadToken: SecureBytes, minTTL: TimeInterval) async throws -> CredentialAnswer
    /// Revokes the stored token at KIS and forgets it.
    func revokeToken(account: String) async throws -> RevokeAnswer
    /// The appkey, appsecret and account fields of `account`; every hand-out is audited.
    func appCredentials(account: String, purpose: HandOut) async throws -> AppCredentials
    /// Issues or rotates credentials over a selection; `started` is called once with the
    /// run's live counters, before the first request.
    func bulk(_ request: BulkRequest, started: @escaping @Sendable (BulkProgress) -> Void) async throws -> [BulkItemResult]
    /// Releases what the service holds (the KIS client's connections, the vault).
    func close() async
}

/// Everything a front-end asks of kisvault about credentials: what needs the key
/// (``KeyedCredentials``), and what is read from the vault without it (the accounts, the
/// credentials' state, the vault's clock). ``LocalCredentialService`` answers all of it;
/// ``AgentFirstService`` asks a running agent what needs the key and reads the rest here.
public protocol CredentialService: KeyedCredentials {
    /// The accounts (optionally only those tagged `tag`), by name. Needs no passphrase.
    func accounts(tag: String?) async throws -> [AccountInfo]
    /// One account's metadata; throws `not_found` before anything else is asked.
    func account(named name: String) async throws -> AccountInfo
    /// Each selected account's credential state of `kind`. Needs no passphrase.
    func status(_ kind: CredentialKind, tag: String?) async throws -> [CredentialStatus]
    /// The clock every decision and every display of this vault uses: this machine's,
    /// corrected to a team vault's server. Needs no passphrase.
    func clock() async throws -> Date
}

/// Why app credentials are handed out: the audit row each hand-out writes.
public enum HandOut: String, Sendable, Codable {
    /// `kisvault exec`: the command's environment. Audited as `exec`.
    case exec
    /// `account show --reveal`. Audited as `account.reveal`.
    case reveal
    /// `token export` in a format named after or holding them (pykis, kis-trader,
    /// mojito2). Audited as `token.export`.
    case export
    /// `token check`: the appkey and appsecret go in the data call's headers. Audited as
    /// `token.check`.
    case check
    /// Any other reader of the agent's API. Audited as `account.reveal`.
    case api

    var auditAction: String {
        switch self {
        case .exec: "exec"
        case .export: "token.export"
        case .check: "token.check"
        case .reveal, .api: "account.reveal"
        }
    }
}
