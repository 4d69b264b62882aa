import ArgumentParser
import ClientFormats
import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension AccountCommand {
    /// `kisvault account export`
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Export accounts as JSON in the import format, or as the official sample's kis_devlp.yaml; secrets only with --plaintext.",
            usage: "kisvault account export [<names> ...] [options]",
            discussion: """
                Without --plaintext only names, environments and tags are written. A file given \
                with --output is written with mode 0600 through a temporary file and a rename, \
                so it is never seen half-written. --format kis-yaml writes kis_devlp.yaml for \
                one account or a real+mock pair (named), with --plaintext: the inverse of \
                'account import --format kis-yaml', for teams that must keep the sample's file.

                Examples:
                  kisvault account export --plaintext --output backup.json
                  kisvault account export --format kis-yaml --plaintext team-real team-mock --output ~/KIS/config/kis_devlp.yaml
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Include appkeys, appsecrets, account numbers and HTS ids in clear text.") var plaintext = false
        @Option(help: ArgumentHelp("Write to this file ('-': standard output, the default); only a regular file is replaced.", valueName: "file"), completion: .file()) var output: String?
        @Option(name: .customLong("format"), help: ArgumentHelp("json (default) or kis-yaml.", valueName: "format")) var exportFormat = ExportFormat.json
        @Argument(help: "Only these accounts (kis-yaml: one, or one real and one mock).", completion: Completions.accounts) var names: [String] = []

        enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
            case json
            case kisYAML = "kis-yaml"
        }

        func validate() throws {
            if exportFormat == .kisYAML {
                guard plaintext else { throw ValidationError("kis-yaml holds appkeys and appsecrets: give --plaintext to export them in clear text") }
                guard (1...2).contains(names.count) else { throw ValidationError("kis-yaml holds one real and one mock account: name one account, or two") }
            }
        }

        struct Item: Encodable {
            var name: String, environment: String, tags: [String]
            var appkey: String?, appsecret: String?, accountNo: String?, htsId: String?
        }

        func run() throws {
            guard plaintext else {
                let all = try options.admin.accounts()
                try VaultError.checkNamed(names, among: Set(all.map(\.name)))
                let wanted = Set(names)
                let items = all.filter { wanted.isEmpty || wanted.contains($0.name) }.map {
                    Item(name: $0.name, environment: $0.environment.rawValue, tags: $0.tags)
                }
                Terminal.note("secrets omitted: pass --plaintext to export appkeys and appsecrets in clear text")
                return try write(try json(items), export: nil, count: items.count)
            }
            let export = try options.admin.plaintextExport(names: names)
            let selected = export.accounts
            if exportFormat == .kisYAML {
                return try write(Data(try KISYAMLWriter.text(selected).utf8), export: export, count: selected.count)
            }
            let items = selected.map { summary, secrets in
                Item(name: summary.name, environment: summary.environment.rawValue, tags: summary.tags,
                     appkey: secrets.appkey.utf8String(), appsecret: secrets.appsecret.utf8String(),
                     accountNo: secrets.accountNumber?.utf8String(), htsId: secrets.htsID?.utf8String())
            }
            try write(try json(items), export: export, count: items.count)
        }

        /// The import format's JSON: snake_case keys, sorted, one item per account.
        func json(_ items: [Item]) throws -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            var data = try encoder.encode(items)
            data.append(10)
            return data
        }

        /// Writes the export to the file or stdout, then audits it (plaintext exports only).
        func write(_ exported: Data, export: VaultAdmin.PlaintextExport?, count: Int) throws {
            var data = exported
            defer { data.resetBytes(in: 0..<data.count) }
            let toFile = output.flatMap { $0 == "-" ? nil : $0 }
            // The export happens first and the audit row records it afterwards: a row
            // saying "exported" is written only once the secrets really left the vault.
            if let toFile {
                try AtomicFile.write(data, to: toFile, dashIsStdout: true)
            } else {
                try Terminal.out(String(decoding: data, as: UTF8.self))
            }
            if let export {
                do {
                    try export.audited("plaintext \(exportFormat.rawValue), \(count) accounts")
                } catch {
                    // Not audited means not exported: take the file back (stdout cannot be).
                    if let toFile { unlink(toFile) }
                    throw error
                }
            }
            if let toFile { Terminal.note("exported \(count) accounts to \(toFile)") }
        }
    }
}
