import Foundation
import CredentialService
import Testing

/// The whole help of the top level and two subcommands, compared with the files under
/// `Help/`, so a change to what users read is seen in review. After a deliberate change:
/// `COLUMNS=80 .build/debug/kisvault [COMMAND] --help > Tests/KisvaultCLITests/Help/top[-COMMAND].txt`.
@Suite struct CLIHelpTextTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Help").path

    @Test(arguments: [("top", [String]()), ("top-token", ["token"]), ("top-approval-check", ["approval", "check"])])
    func helpIsAsWritten(file: String, command: [String]) async throws {
        let box = CLISandbox()
        let help = try await box.runAsync(command + ["--help"], env: ["COLUMNS": "80"])
        #expect(help.status == 0)
        let expected = try String(contentsOfFile: Self.directory + "/\(file).txt", encoding: .utf8)
        #expect(help.stdout == expected, "the help of 'kisvault \(command.joined(separator: " "))' changed; see the comment above to update \(file).txt")
        // What fits a terminal: every line within 80 columns, the usage line too.
        let wide = help.stdout.split(separator: "\n").filter { $0.count > 80 }
        #expect(wide.isEmpty, "\(wide)")
    }
}

extension CLIHelpTextTests {
    /// One exit-code map: docs/CLI.md's "Exit codes" table lists exactly the statuses of
    /// `ErrorCode`'s table, in order, and the top-level help prints the line made from it.
    @Test func theExitCodeTableIsOneTable() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let doc = try String(contentsOfFile: root + "/docs/CLI.md", encoding: .utf8)
        let section = try #require(doc.range(of: "## Exit codes\n")).upperBound
        let rest = doc[section...]
        let table = rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)]
        let documented = table.split(separator: "\n").compactMap { line -> Int32? in
            guard line.hasPrefix("| ") else { return nil }
            return Int32(line.dropFirst(2).prefix { $0 != " " })
        }
        #expect(documented == ErrorCode.exitStatuses.map(\.status), "docs/CLI.md's exit codes \(documented)")
        let help = try await CLISandbox().runAsync(["--help"], env: ["COLUMNS": "80"])
        let flowing = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(flowing.contains(ErrorCode.exitStatusLine), "\(help.stdout)")
    }
}
