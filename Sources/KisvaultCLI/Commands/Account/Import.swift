import ArgumentParser
import ClientFormats
import CredentialService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension AccountCommand {
    /// `kisvault account import`
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Import accounts from CSV, JSON or the official sample's kis_devlp.yaml, all or none.",
            usage: "kisvault account import <file> [options]",
            discussion: """
                CSV has a header: name,environment,appkey,appsecret,account_no,hts_id,tags (tags \
                separated by ';'). JSON is an array of objects with the same fields. kis-yaml \
                reads kis_devlp.yaml: my_app/my_sec become NAME-real and paper_app/paper_sec \
                NAME-mock (NAME from --name). Every bad row is reported with its line or item; \
                nothing is written unless every row is good. '-' reads standard input.

                Examples:
                  kisvault account import accounts.csv
                  kisvault account import ~/KIS/config/kis_devlp.yaml --name team
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The file to import, or '-' for standard input.", completion: .file()) var file: String
        @Option(name: .customLong("format"), help: ArgumentHelp("csv, json or kis-yaml (default: from the file name or content).", valueName: "format"))
        var inputFormat: String?
        @Flag(help: "Replace accounts whose names exist instead of refusing them.") var update = false
        @Option(help: "Base name for kis-yaml accounts.") var name = "kis"

        func validate() throws {
            if let inputFormat, AccountFileFormat(rawValue: inputFormat) == nil {
                throw ValidationError("unknown import format '\(inputFormat)': use csv, json or kis-yaml")
            }
        }

        func run() throws {
            let source = file == "-" ? "standard input" : file
            let summary = try options.admin.importAccounts(update: update, source: source) {
                let data = try InputFile.read(file == "-" ? nil : file, limit: InputFile.maxImportBytes, what: "import file")
                let format = inputFormat.flatMap(AccountFileFormat.init(rawValue:)) ?? AccountFileFormat.detect(name: file, data: data)
                var parser = AccountFileParser()
                try parser.read(data, format: format, base: name, source: source)
                return (parser.candidates, parser.problems)
            }
            Terminal.note("imported \(summary.added + summary.updated) accounts from \(source) (\(summary.added) added, \(summary.updated) updated)")
        }
    }
}
