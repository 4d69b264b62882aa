import ArgumentParser
import KisvaultCLI
import Testing

/// The shape of the command tree itself, checked without running the binary.
@Suite struct CLICommandTreeTests {
    /// Without an explicit `commandName`, ArgumentParser derives each command's name from
    /// its type name with `String(describing:)` for the whole tree on every start-up: a
    /// fifth of a cached `approval get`. The names must also stay what docs/CLI.md says.
    @Test func everyCommandNamesItselfExplicitly() {
        var unnamed: [String] = []
        var paths: [String] = []
        func walk(_ command: any ParsableCommand.Type, path: String) {
            let configuration = command.configuration
            guard let name = configuration.commandName else {
                unnamed.append("\(path) > \(command)")
                return
            }
            let here = path.isEmpty ? name : "\(path) \(name)"
            paths.append(here)
            for sub in configuration.subcommands { walk(sub, path: here) }
        }
        walk(Kisvault.self, path: "")
        #expect(unnamed.isEmpty, "commands without a commandName: \(unnamed)")
        for expected in ["kisvault approval get", "kisvault token revoke", "kisvault account import", "kisvault agent start",
                         "kisvault keyslot add", "kisvault passphrase change", "kisvault audit verify", "kisvault exec", "kisvault lock"] {
            #expect(paths.contains(expected), "missing \(expected)")
        }
    }
}
