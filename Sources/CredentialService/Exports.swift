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
