import ArgumentParser
import Foundation
import KISAPI
import KeyManager
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

/// `kisvault exec`
struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command with an account's credentials in its environment.",
        discussion: """
            Sets KIS_ENV, KIS_BASE_URL, KIS_WS_URL, KIS_APPKEY, KIS_APPSECRET, KIS_ACCOUNT_NO and \
            KIS_HTS_ID (when set); with --approval KIS_APPROVAL_KEY and with --token \
            KIS_ACCESS_TOKEN (fresh for at least --min-ttl). kisvault then replaces itself with \
            the command, so signals reach it directly and its exit status is kisvault's. \
            KISVAULT_PASSPHRASE is removed from the command's environment.

            Example:
              kisvault exec alpha --token -- python3 bot.py
            """)

    @OptionGroup var options: VaultOptions
    @OptionGroup var manager: ManagerOptions
    @Argument(help: "The account.") var account: String
    @Flag(help: "Also set KIS_APPROVAL_KEY.") var approval = false
    @Flag(help: "Also set KIS_ACCESS_TOKEN.") var token = false
    @OptionGroup var minTTL: MinTTLOptions
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command to run after --: kisvault exec \(account) -- COMMAND") }
    }

    func run() async throws {
        let vault = try options.open(.readWrite)
        let summary = try vault.account(named: account)
        let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
        let secrets = try unlocked.secrets(of: account)
        let environment = summary.environment == .real ? KISEnvironment.real : .mock
        let endpoints: KISEndpoints
        do { endpoints = try KISEndpoints.fromEnvironment() } catch { throw KeyManagerError.configuration(error.description) }
        var env = ProcessInfo.processInfo.environment
        env["KISVAULT_PASSPHRASE"] = nil
        env["KIS_ENV"] = summary.environment.rawValue
        env["KIS_BASE_URL"] = endpoints.baseURL(for: environment)
        env["KIS_WS_URL"] = environment.webSocketURL
        env["KIS_APPKEY"] = secrets.appkey.utf8String()
        env["KIS_APPSECRET"] = secrets.appsecret.utf8String()
        env["KIS_ACCOUNT_NO"] = secrets.accountNumber?.utf8String()
        env["KIS_HTS_ID"] = secrets.htsID?.utf8String()
        if approval || token {
            let keyManager = try manager.manager(vault: unlocked)
            do {
                if approval { env["KIS_APPROVAL_KEY"] = try await keyManager.get(account: account, kind: .approval, minTTL: minTTL.seconds).value.utf8String() }
                if token { env["KIS_ACCESS_TOKEN"] = try await keyManager.get(account: account, kind: .token, minTTL: minTTL.seconds).value.utf8String() }
            } catch {
                await keyManager.client.shutdown()
                throw error
            }
            await keyManager.client.shutdown()
        }
        try unlocked.recordAudit(action: "exec", account: account, detail: (approval ? "approval " : "") + (token ? "token" : ""))
        unlocked.vault.close()
        // execvp replaces this process: the master key and the vault connection go with
        // it, signals reach the command directly, and its exit status becomes ours.
        let argv = command.map { strdup($0) } + [nil]
        clearenv()
        for (key, value) in env { setenv(key, value, 1) }
        execvp(command[0], argv)
        let error = errno
        throw CLIError.badInput("cannot run '\(command[0])': \(String(cString: strerror(error)))")
    }
}
