import CredentialService

/// Caps on the command line, checked before argument-parser sees it. Its parsing of
/// repeated options and positional lists grows with the square of their number (5,000
/// `--tag` options took 35 s before any validation ran), so a command line is refused
/// before that: no kisvault command needs more, and each limit says what to do instead.
enum ArgumentLimits {
    /// Most arguments before a `--` (what follows `--` is `exec`'s command, not parsed).
    static let maxArguments = 1024
    /// The options that add one tag each.
    static let tagOptions: Set<String> = ["--tag", "--add-tag", "--remove-tag"]

    /// Why `arguments` is refused, or nil.
    static func problem(_ arguments: [String]) -> String? {
        let parsed = arguments.prefix { $0 != "--" }
        var tags = 0
        for argument in parsed {
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if tagOptions.contains(name) { tags += 1 }
        }
        if tags > AccountValidation.maxTags {
            return "\(tags) tag options; an account carries at most \(AccountValidation.maxTags) tags"
        }
        if parsed.count > maxArguments {
            return "too many arguments (\(parsed.count); at most \(maxArguments)): select accounts with --all or --tag instead of naming each one"
        }
        return nil
    }
}
