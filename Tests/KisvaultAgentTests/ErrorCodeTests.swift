import CredentialService
import KISAPI
import KeyManager
import KisvaultAgent
import Testing
import VaultStore

/// The one table from an error to an exit status (docs/CLI.md) and an HTTP status (the
/// agent's API): the CLI and the agent can no longer disagree.
@Suite struct ErrorCodeTests {
    @Test func theTable() {
        let table: [ErrorCode: (Int32, Int)] = [
            .badRequest: (2, 400), .locked: (3, 423), .notFound: (4, 404), .forbidden: (1, 403),
            .kisRejected: (5, 502), .kisUnavailable: (6, 503), .vaultChanged: (1, 409), .kisURLsDiffer: (1, 409),
            .vaultDiffers: (1, 409), .vaultError: (1, 500), .partial: (7, 207),
        ]
        #expect(table.count == ErrorCode.allCases.count)
        for code in ErrorCode.allCases {
            #expect(code.exitStatus == table[code]?.0 && code.httpStatus == table[code]?.1, "\(code)")
        }
    }

    @Test func errorsMapAsTheDocsSay() {
        #expect(ErrorCode.of(VaultError.accountNotFound(name: "x")) == .notFound)
        #expect(ErrorCode.of(VaultError.wrongPassphrase(keyslotsTried: 1)) == .locked)
        #expect(ErrorCode.of(VaultError.invalidName("x", reason: "y")) == .badRequest)
        #expect(ErrorCode.of(VaultError.staleFiles(path: "p", files: ["p-wal"])) == .badRequest)
        #expect(ErrorCode.of(VaultError.walMissing(path: "p")) == .vaultError)
        #expect(ErrorCode.of(KeyManagerError.kis(account: "a", KISError(kind: .credentialsRejected, message: "m"))) == .kisRejected)
        #expect(ErrorCode.of(KeyManagerError.kis(account: "a", KISError(kind: .rateLimited, message: "m"))) == .kisUnavailable)
        #expect(ErrorCode.of(KeyManagerError.mustWait(account: "a", seconds: 5)) == .kisUnavailable)
        #expect(ErrorCode.of(KeyManagerError.nothingStored(account: "a", kind: .token)) == .notFound)
        #expect(throws: KISConfigurationError.self) { try KISEndpoints(both: "http://example.test").validate() }
        do { try KISEndpoints(both: "http://example.test").validate() } catch { #expect(ErrorCode.of(error) == .badRequest) }
        struct Other: Error {}
        #expect(ErrorCode.of(Other()) == nil)
    }
}
