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
        commandName: "exec",
        abstract: "Run a command with an account's credentials in its environment.",
        discussion: """
            Sets KIS_ENV, KIS_BASE_URL, KIS_WS_URL, KIS_APPKEY, KIS_APPSECRET, KIS_ACCOUNT_NO with \
            KIS_CANO and KIS_ACNT_PRDT_CD, and KIS_HTS_ID (when set); with --approval \
            KIS_APPROVAL_KEY and with --token KIS_ACCESS_TOKEN (fresh for at least --min-ttl), \
            each with _EXPIRES_AT (epoch seconds) and _EXPIRES_KST (Korea time, as KIS writes it). kisvault then replaces itself with \
            the command, so signals reach it directly and its exit status is kisvault's. \
            KISVAULT_PASSPHRASE is removed from the command's environment.

            With --kis-sample the command runs with HOME at a private 0700 directory holding \
            KIS/config/kis_devlp.yaml (this account) and today's KIS<YYYYMMDD> token file, as \
            the official sample reads them, so its auth() makes no request; kisvault then \
            waits for the command, forwards SIGINT/SIGTERM/SIGHUP to it, removes the \
            directory and exits with the command's status.

            Examples:
              kisvault exec alpha --token -- python3 bot.py
              kisvault exec alpha --kis-sample -- python3 examples_user/my_bot.py
            """)

    @OptionGroup var options: VaultOptions
    @OptionGroup var manager: ManagerOptions
    @Argument(help: "The account.") var account: String
    @Flag(help: "Also set KIS_APPROVAL_KEY.") var approval = false
    @Flag(help: "Also set KIS_ACCESS_TOKEN.") var token = false
    @Flag(name: .customLong("kis-sample"), help: "Run the command with HOME at a private directory holding the official sample's kis_devlp.yaml and token file (implies --token).")
    var kisSample = false
    @OptionGroup var minTTL: MinTTLOptions
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command to run after --: kisvault exec \(account) -- COMMAND") }
    }

    func run() async throws {
        let endpoints: KISEndpoints
        do { endpoints = try KISEndpoints.fromEnvironment() } catch { throw KeyManagerError.configuration(error.description) }
        var env = ProcessInfo.processInfo.environment
        env["KISVAULT_PASSPHRASE"] = nil
        func variables(_ environment: AccountEnvironment, _ appkey: String, _ appsecret: String, _ accountNumber: String?, _ htsID: String?) -> [String: String] {
            let kisEnvironment = environment == .real ? KISEnvironment.real : .mock
            var out = [
                "KIS_ENV": environment.rawValue, "KIS_BASE_URL": endpoints.baseURL(for: kisEnvironment),
                "KIS_WS_URL": endpoints.webSocketURL(for: kisEnvironment), "KIS_APPKEY": appkey, "KIS_APPSECRET": appsecret,
            ]
            out["KIS_ACCOUNT_NO"] = accountNumber
            // The split KIS's order and balance calls take: CANO (8 digits) and
            // ACNT_PRDT_CD (2 digits).
            if let digits = accountNumber?.filter(\.isNumber), digits.count == 10 {
                out["KIS_CANO"] = String(digits.prefix(8))
                out["KIS_ACNT_PRDT_CD"] = String(digits.suffix(2))
            }
            out["KIS_HTS_ID"] = htsID
            return out
        }
        if let fromAgent = try fromAgent(variables: variables) {
            finish(env.merging(fromAgent) { _, new in new })
        }
        let vault = try options.open(.readWrite)
        let summary = try vault.account(named: account)
        let unlocked = try vault.unlock(passphrase: try options.passphrase(), keyslot: options.keyslot)
        let secrets = try unlocked.secrets(of: account)
        env.merge(variables(summary.environment, secrets.appkey.utf8String(), secrets.appsecret.utf8String(),
                            secrets.accountNumber?.utf8String(), secrets.htsID?.utf8String())) { _, new in new }
        if approval || needsToken {
            let keyManager = try manager.manager(vault: unlocked)
            do {
                if approval {
                    let issued = try await keyManager.get(account: account, kind: .approval, minTTL: minTTL.seconds)
                    env.merge(Self.credentialVariables(.approval, value: issued.value.utf8String(), expiresAt: issued.times.expiresAt)) { _, new in new }
                }
                if needsToken {
                    let issued = try await keyManager.get(account: account, kind: .token, minTTL: minTTL.seconds)
                    env.merge(Self.credentialVariables(.token, value: issued.value.utf8String(), expiresAt: issued.times.expiresAt)) { _, new in new }
                }
            } catch {
                await keyManager.client.shutdown()
                throw error
            }
            await keyManager.client.shutdown()
        }
        try unlocked.recordAudit(action: "exec", account: account,
                                 detail: [approval ? "approval" : nil, needsToken ? "token" : nil, kisSample ? "kis-sample" : nil].compactMap { $0 }.joined(separator: " "))
        unlocked.vault.close()
        finish(env)
    }

    var needsToken: Bool { token || kisSample }

    /// Runs the command: replaced by it, or with --kis-sample, as a child under a private HOME.
    func finish(_ env: [String: String]) -> Never {
        guard kisSample else { execute(env) }
        do {
            Glibc.exit(try SampleHome.run(command: command, environment: env, account: account, margin: minTTL.seconds))
        } catch {
            Glibc.exit(report(error).rawValue)
        }
    }

    /// The KIS_* variables from a running agent for this vault; nil when there is none (or
    /// it is locked), so the caller unlocks by itself.
    func fromAgent(variables: (AccountEnvironment, String, String, String?, String?) -> [String: String]) throws -> [String: String]? {
        func ask(_ target: String) throws -> [String: Any]? {
            switch AgentUse.call(target, vaultPath: options.path, options: options) {
            case .answered(let body): return body
            case .failed(let error): throw error
            case .unavailable: return nil
            }
        }
        guard let app = try ask("/v1/accounts/\(account)/app-credentials?for=exec"),
              let appkey = app["appkey"] as? String, let appsecret = app["appsecret"] as? String else { return nil }
        var env = variables(AccountEnvironment(rawValue: app["environment"] as? String ?? "") ?? .mock, appkey, appsecret,
                            app["account_no"] as? String, app["hts_id"] as? String)
        let ttl = Int(minTTL.seconds)
        for (kind, wanted, path) in [(CredentialKind.approval, approval, "approval-key"), (.token, needsToken, "access-token")] where wanted {
            guard let answer = try ask("/v1/accounts/\(account)/\(path)?min_ttl=\(ttl)"),
                  let value = answer[kind.jsonField] as? String,
                  let expires = (answer["expires_at"] as? String).flatMap(Timestamp.parse) else { return nil }
            env.merge(Self.credentialVariables(kind, value: value, expiresAt: expires)) { _, new in new }
        }
        return env
    }

    /// `KIS_APPROVAL_KEY` / `KIS_ACCESS_TOKEN`, its expiry as epoch seconds
    /// (`..._EXPIRES_AT`) and as KIS writes it, Korea time (`..._EXPIRES_KST`).
    static func credentialVariables(_ kind: CredentialKind, value: String, expiresAt: Date) -> [String: String] {
        let name = kind == .approval ? "KIS_APPROVAL_KEY" : "KIS_ACCESS_TOKEN"
        return [name: value, name + "_EXPIRES_AT": String(Int(expiresAt.timeIntervalSince1970)),
                name + "_EXPIRES_KST": KoreaTime.format(expiresAt)]
    }

    /// Replaces this process with the command: the master key and the vault connection go
    /// with it, signals reach the command directly, and its exit status becomes ours.
    func execute(_ env: [String: String]) -> Never {
        let argv = command.map { strdup($0) } + [nil]
        clearenv()
        for (key, value) in env { setenv(key, value, 1) }
        execvp(command[0], argv)
        let error = errno
        Terminal.note("cannot run '\(command[0])': \(String(cString: strerror(error)))")
        Glibc.exit(KisvaultExit.usage.rawValue)
    }
}
