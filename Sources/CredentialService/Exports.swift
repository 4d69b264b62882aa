// The manager's types a front end sees through the service, published as the service's:
// a front end imports CredentialService, not the manager below it (as Hummingbird
// publishes HummingbirdCore's request and response types).
@_exported import enum KeyManager.BulkMode
@_exported import class KeyManager.BulkProgress
@_exported import struct KeyManager.BulkItemResult

// The vault's types the service's own signatures carry.
@_exported import enum VaultStore.CredentialKind
@_exported import enum VaultStore.AccountEnvironment
@_exported import struct VaultStore.AccountSecrets
@_exported import struct VaultStore.AccountSummary
@_exported import enum VaultStore.VaultError
@_exported import enum VaultStore.Timestamp

// kisvault's version, written once where the KIS client sends it.
@_exported import let KISAPI.kisvaultVersion

// Secrets cross the boundary in guarded memory.
@_exported import class VaultCrypto.SecureBytes

// What the vault's administration (``VaultAdmin``) takes and answers, and what a client has
// seen of its vaults' histories (``UnlockSource/history``).
@_exported import struct VaultStore.HeadMemory
@_exported import struct VaultStore.AccountChanges
@_exported import struct VaultStore.ImportCandidate
@_exported import struct VaultStore.ImportProblem
@_exported import struct VaultStore.ImportSummary
@_exported import struct VaultStore.KeyslotInfo
@_exported import struct VaultStore.AuditRecord
@_exported import struct VaultStore.AuditVerification
@_exported import struct VaultStore.DoctorCheck
@_exported import struct VaultStore.CopyReport
@_exported import struct VaultCrypto.KDFParameters

// The rules a front end checks its input against before it asks anything (names, the
// shapes of KIS credentials, the environment's settings), the clock every decision uses,
// and path names.
@_exported import enum VaultStore.Names
@_exported import enum VaultStore.AccountValidation
@_exported import enum VaultStore.EnvironmentSettings
@_exported import enum VaultStore.MachineClock
@_exported import enum VaultStore.PathName
