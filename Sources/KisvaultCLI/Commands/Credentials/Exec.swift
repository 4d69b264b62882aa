import ArgumentParser
import ClientFormats
import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `kisvault exec`
struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command with an account's credentials in its environment.",
        usage: "kisvault exec <account> [options] -- <command> ...",
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
            waits for the command, forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 and the other \
            catchable terminating signals to it, removes the \
            directory and exits with the command's status.

            Examples:
              kisvault exec alpha --token -- python3 bot.py
              kisvault exec alpha --kis-sample -- python3 examples_user/my_bot.py
            """)

    @OptionGroup var options: VaultOptions
    @OptionGroup var manager: ManagerOptions
    @Argument(help: "The account.", completion: Completions.accounts) var account: String
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
        var env = ProcessInfo.processInfo.environment
        env["KISVAULT_PASSPHRASE"] = nil
        let detail = [approval ? "approval" : nil, needsToken ? "token" : nil, kisSample ? "kis-sample" : nil].compactMap { $0 }.joined(separator: " ")
        let variables = try await Services.with(options, manager) { service in
            // The hand-out of the appkey and appsecret is audited (`exec`) before anything else.
            let app = try await service.appCredentials(account: account, purpose: .exec, detail: detail)
            var out = ExecEnvironment.account(app, urls: service.kisURLs)
            for (kind, wanted) in [(CredentialKind.approval, approval), (.token, needsToken)] where wanted {
                let answer = try await service.credential(kind, account: account, minTTL: minTTL.seconds)
                out.merge(ExecEnvironment.credential(kind, value: try answer.checkedText(account: account), expiresAt: answer.expiresAt)) { _, new in new }
            }
            return out
        }
        finish(env.merging(variables) { _, new in new })
    }

    var needsToken: Bool { token || kisSample }

    /// Runs the command: replaced by it, or with --kis-sample, as a child under a private HOME.
    func finish(_ env: [String: String]) -> Never {
        guard kisSample else { execute(env) }
        do {
            Glibc.exit(try SampleHome.run(command: command, environment: env, account: account, margin: minTTL.seconds))
        } catch {
            Glibc.exit(report(error))
        }
    }

    /// Replaces this process with the command: the master key and the vault connection go
    /// with it, signals reach the command directly, and its exit status becomes ours.
    func execute(_ env: [String: String]) -> Never {
        let argv = command.map { strdup($0) } + [nil]
        clearenv()
        for (key, value) in env { setenv(key, value, 1) }
        ChildSignals.resetForExec()
        execvp(command[0], argv)
        let error = errno
        Terminal.note("cannot run '\(command[0])': \(String(cString: strerror(error)))")
        Glibc.exit(ErrorCode.badRequest.exitStatus)
    }
}
