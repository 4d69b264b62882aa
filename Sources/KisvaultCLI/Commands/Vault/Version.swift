import ArgumentParser

/// `kisvault version`
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print kisvault's version.",
        usage: "kisvault version [options]",
        discussion: "The same as 'kisvault --version'.")

    func run() throws {
        try Terminal.out(Kisvault.version)
    }
}
