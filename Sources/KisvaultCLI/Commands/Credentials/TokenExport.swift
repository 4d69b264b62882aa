import ArgumentParser
import ClientFormats
import CredentialService
import Foundation

extension TokenCommand {
    /// `kisvault token export`
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write an account's access token where a KIS client reads its own cache, so it asks KIS for none.",
            usage: "kisvault token export <account> --format <format> [options]",
            discussion: """
                The token is the one 'token get' prints (issued only if needed), written \
                0600 through a temporary file and a rename, under the name its reader \
                looks for (DIR's default in brackets):
                  kis-sample  KIS<YYYYMMDD>, token: and valid-date: [~/KIS/config]
                  pykis       token_<real|virtual>_<HTS id>_<sha1>.json [~/.pykis/cache]
                  kis-trader  <real|paper>-<sha256 of appkey>.json
                              [~/.cache/kis-trader/tokens]
                  mojito2     token.dat, with the appkey and appsecret (--plaintext) [.]
                  korea-investment-stock
                              token.key, the same (--plaintext) [~/.cache/kis]
                  env         ACCOUNT.env: KIS_ACCESS_TOKEN and its expiry [.]
                  json        ACCOUNT.token.json [.]
                Each reader is told the token ends --min-ttl before it does; PyKis and \
                kis-trader drop a token 10 minutes before that, so for them it is renewed \
                with less than --min-ttl plus 10 minutes left (docs/INTEGRATIONS.md).

                Examples:
                  kisvault token export alpha --format kis-sample
                  kisvault token export alpha --format pykis --dir ~/bots/pykis-tokens
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.", completion: Completions.accounts) var account: String
        @Option(name: .customLong("format"), help: ArgumentHelp("kis-sample, pykis, kis-trader, mojito2, korea-investment-stock, env or json.", valueName: "format"))
        var exportFormat: TokenFileFormat
        @Option(help: ArgumentHelp("The directory to write into (default: where that client looks; env, json, mojito2: the current one).", valueName: "dir"))
        var dir: String?
        @Flag(help: "Allow a format that holds the appsecret in clear (mojito2, korea-investment-stock).") var plaintext = false
        @OptionGroup var minTTL: MinTTLOptions

        func validate() throws {
            if exportFormat.holdsAppsecret && !plaintext {
                throw ValidationError("\(exportFormat.rawValue)'s token.dat holds the appkey and appsecret in clear (it compares them with its own): give --plaintext to write it")
            }
            guard minTTL.seconds + exportFormat.readerMargin < CredentialRules.shortestLifetime else {
                throw ValidationError("--min-ttl \(minTTL.minTTL) plus \(exportFormat.rawValue)'s own 10 minutes is not shorter than a token lives (24h)")
            }
        }

        func run() async throws {
            let (path, expiresAt) = try await Services.with(options, manager) { service in
                try await TokenFiles.export(exportFormat, account: account, minTTL: minTTL.seconds, into: dir, service: service)
            }
            Terminal.note("wrote the access token of '\(account)' to \(path) (valid until \(Timestamp.string(expiresAt)))")
        }
    }
}
