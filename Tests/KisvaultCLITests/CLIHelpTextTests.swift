import Foundation
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
