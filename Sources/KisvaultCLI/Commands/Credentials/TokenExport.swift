import ArgumentParser
import Foundation
import CredentialService
import VaultStore

extension TokenCommand {
    /// `kisvault token export`
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write an account's access token where a KIS client reads its own cache, so it asks KIS for none.",
            discussion: """
                The token is the one 'token get' prints (issued only if needed), written 0600 \\
                through a temporary file and a rename:
                  kis-sample  DIR/KIS<YYYYMMDD> with token: and valid-date:, as the official \\
                              sample's kis_auth.py reads it (DIR default ~/KIS/config)
                  env         DIR/ACCOUNT.env: KIS_ACCESS_TOKEN and its expiry
                  json        DIR/ACCOUNT.token.json: access_token, expires_at, \\
                              access_token_token_expired
                The sample compares valid-date with the machine's local time, so it is \\
                written in local time, --min-ttl before the real expiry (docs/INTEGRATIONS.md).

                Example:
                  kisvault token export alpha --format kis-sample
                """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var manager: ManagerOptions
        @Argument(help: "The account.") var account: String
        @Option(name: .customLong("format"), help: ArgumentHelp("kis-sample, env or json.", valueName: "format")) var exportFormat: TokenFileFormat
        @Option(help: ArgumentHelp("The directory to write into (kis-sample: ~/KIS/config; others: the current one).", valueName: "dir"))
        var dir: String?
        @OptionGroup var minTTL: MinTTLOptions

        enum TokenFileFormat: String, ExpressibleByArgument, CaseIterable {
            case kisSample = "kis-sample", env, json
        }

        func run() async throws {
            let issued = try await Services.with(options, manager) { try await $0.credential(.token, account: account, minTTL: minTTL.seconds) }
            let token = try issued.checkedText(account: account)
            let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
            let directory = dir ?? (exportFormat == .kisSample ? home + "/KIS/config" : ".")
            let file = TokenFiles.file(format: exportFormat, account: account, token: token, expiresAt: issued.expiresAt,
                                       margin: minTTL.seconds, now: Date())
            try TokenFiles.makeDirectory(directory)
            var data = Data(file.contents.utf8)
            defer { data.resetBytes(in: 0..<data.count) }
            let path = directory + "/" + file.name
            try AtomicFile.write(data, to: path)
            Terminal.note("wrote the access token of '\(account)' to \(path) (valid until \(Timestamp.string(issued.expiresAt)))")
        }
    }
}

/// The token files of `token export`, each in the format and under the name its reader expects.
enum TokenFiles {
    /// The file for `format`: its name in the directory and its text.
    static func file(format: TokenCommand.Export.TokenFileFormat, account: String, token: String, expiresAt: Date, margin: TimeInterval,
                     now: Date, zone: TimeZone = .current) -> (name: String, contents: String) {
        switch format {
        case .kisSample:
            // kis_auth.py reads KIS<today's date>, and keeps the token while `valid-date` is
            // later than the machine's local time as text: so the date is written in the
            // machine's zone (KIS's own string is Korea time), `margin` before the expiry.
            let local = DateFormatter()
            local.locale = Locale(identifier: "en_US_POSIX")
            local.timeZone = zone
            local.dateFormat = "yyyy-MM-dd HH:mm:ss"
            let day = DateFormatter()
            day.locale = Locale(identifier: "en_US_POSIX")
            day.timeZone = zone
            day.dateFormat = "yyyyMMdd"
            let validUntil = expiresAt.addingTimeInterval(-margin)
            return ("KIS" + day.string(from: now), "token: \(token)\nvalid-date: \(local.string(from: validUntil))\n")
        case .env:
            return ("\(account).env", "KIS_ACCESS_TOKEN=\(token)\nKIS_ACCESS_TOKEN_EXPIRES_AT=\(Int(expiresAt.timeIntervalSince1970))\nKIS_ACCESS_TOKEN_EXPIRES_KST='\(CredentialRules.koreaTime(expiresAt))'\n")
        case .json:
            let object = #"{"access_token": "\#(token)", "expires_at": "\#(Timestamp.string(expiresAt))", "access_token_token_expired": "\#(CredentialRules.koreaTime(expiresAt))"}"#
            return ("\(account).token.json", object + "\n")
        }
    }

    /// Creates `directory` and its missing parents 0700.
    static func makeDirectory(_ directory: String) throws(CLIError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io("cannot create \(directory): \(error.localizedDescription)")
        }
    }
}
