import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import VaultCrypto
import VaultStore

extension AccountCommand {
    /// `kisvault account export`
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Export accounts as JSON in the import format; secrets only with --plaintext.",
            discussion: """
                Without --plaintext only names, environments and tags are written. A file given \
                with --output is written with mode 0600 through a temporary file and a rename, \
                so it is never seen half-written.

                Example:
                  kisvault account export --plaintext --output backup.json
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Include appkeys, appsecrets, account numbers and HTS ids in clear text.") var plaintext = false
        @Option(help: ArgumentHelp("Write to this file ('-': standard output, the default); only a regular file is replaced.", valueName: "file")) var output: String?

        struct Item: Encodable {
            var name: String, environment: String, tags: [String]
            var appkey: String?, appsecret: String?, accountNo: String?, htsId: String?
        }

        func run() throws {
            let items: [Item]
            var unlocked: UnlockedVault?
            if plaintext {
                let opened = try options.unlock(.readWrite)
                unlocked = opened
                items = try opened.exportAccounts().map { summary, secrets in
                    Item(name: summary.name, environment: summary.environment.rawValue, tags: summary.tags,
                         appkey: secrets.appkey.utf8String(), appsecret: secrets.appsecret.utf8String(),
                         accountNo: secrets.accountNumber?.utf8String(), htsId: secrets.htsID?.utf8String())
                }
            } else {
                items = try options.open(.readOnly).accounts().map {
                    Item(name: $0.name, environment: $0.environment.rawValue, tags: $0.tags)
                }
                Terminal.note("secrets omitted: pass --plaintext to export appkeys and appsecrets in clear text")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            var data = try encoder.encode(items)
            data.append(10)
            defer { data.resetBytes(in: 0..<data.count) }
            let toFile = output.flatMap { $0 == "-" ? nil : $0 }
            // The export happens first and the audit row records it afterwards: a row
            // saying "exported" is written only once the secrets really left the vault.
            if let toFile {
                try AtomicFile.write(data, to: toFile)
            } else {
                try Terminal.out(String(decoding: data, as: UTF8.self))
            }
            if let unlocked {
                do {
                    try unlocked.recordAudit(action: "account.export", detail: "plaintext, \(items.count) accounts")
                } catch {
                    // Not audited means not exported: take the file back (stdout cannot be).
                    if let toFile { unlink(toFile) }
                    throw error
                }
            }
            if let toFile { Terminal.note("exported \(items.count) accounts to \(toFile)") }
        }
    }
}
