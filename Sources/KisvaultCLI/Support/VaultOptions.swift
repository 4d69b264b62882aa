import ArgumentParser
import Foundation
import CredentialService

/// How listings and reports are printed.
public enum OutputFormat: String, ExpressibleByArgument, Sendable, CaseIterable {
    case text, json
}

/// Options every command shares: where the vault is, how to print, how to get the
/// passphrase. Pulled into each command with `@OptionGroup`.
public struct VaultOptions: ParsableArguments, @unchecked Sendable {
    @Option(name: .customLong("vault"), help: ArgumentHelp("The vault: a file, or a postgres:// URL for a team vault (default: $KISVAULT_PATH, else $XDG_DATA_HOME/kisvault/vault.db).", valueName: "path-or-url"))
    var vaultPath: String?

    @Flag(help: "Print diagnostics to stderr.")
    var verbose = false

    @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("Read the passphrase from the first line of this file.", valueName: "file"))
    var passphraseFile: String?

    @Option(name: .customLong("passphrase-fd"), help: ArgumentHelp("Read the passphrase from this inherited file descriptor.", valueName: "n"))
    var passphraseFD: Int32?

    @Option(help: ArgumentHelp("Try only the keyslot with this label when unlocking.", valueName: "label"))
    var keyslot: String?

    public init() {}

    /// The vault path: `--vault`, else `$KISVAULT_PATH`, else the XDG data directory.
    var path: String { Self.path(given: vaultPath) }

    /// `given` (a `--vault`), else `$KISVAULT_PATH`, else the XDG data directory.
    static func path(given: String?) -> String {
        if let given { return given }
        let env = ProcessInfo.processInfo.environment
        if let p = env["KISVAULT_PATH"], !p.isEmpty { return p }
        let data = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (env["HOME"] ?? NSHomeDirectory()) + "/.local/share"
        return data + "/kisvault/vault.db"
    }

    /// Seconds to wait for another writer (`KISVAULT_BUSY_TIMEOUT`, default 5).
    var busyTimeout: Double { EnvironmentSettings.busyTimeout.value() }

    /// The vault's administration (accounts, keyslots, audit, checks), unlocking with
    /// these options' passphrase when an operation needs the key.
    var admin: VaultAdmin { VaultAdmin(path: path, busyTimeout: busyTimeout, unlock: unlockSource) }

    /// `$CREDENTIALS_DIRECTORY/kisvault-passphrase`, when systemd gave the service one.
    static var systemdCredential: String? {
        guard let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else { return nil }
        let path = directory + "/kisvault-passphrase"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// The passphrase from the first source given: `--passphrase-fd`, `--passphrase-file`,
    /// the systemd credential `kisvault-passphrase`, `KISVAULT_PASSPHRASE`, else a no-echo
    /// prompt on the terminal. An empty one is no
    /// passphrase (exit 3), said as such rather than tried and reported as wrong; with
    /// `creating`, a new vault's, it is bad input (exit 2).
    func passphrase(prompt: String = "Passphrase: ", creating: Bool = false) throws(CLIError) -> SecureBytes {
        let value: SecureBytes
        let source: String
        if let passphraseFD {
            value = try SecretInput.passphrase(fd: passphraseFD)
            source = "--passphrase-fd \(passphraseFD)"
        } else if let passphraseFile {
            value = try SecretInput.passphrase(file: passphraseFile)
            source = "passphrase file \(passphraseFile)"
        } else if let credential = Self.systemdCredential {
            // systemd's LoadCredential=kisvault-passphrase:FILE: read where systemd put it,
            // never copied, never in the environment.
            value = try SecretInput.passphrase(file: credential)
            source = "the systemd credential kisvault-passphrase"
        } else if let env = getenv("KISVAULT_PASSPHRASE") {
            value = SecureBytes(copying: UnsafeRawBufferPointer(start: env, count: strlen(env)))
            source = "KISVAULT_PASSPHRASE"
        } else {
            guard let typed = try SecretInput.prompt(prompt) else { throw .noPassphrase }
            value = typed
            source = "the terminal"
        }
        guard value.count > 0 else {
            if creating { throw .emptyPassphrase }
            throw .passphraseSource("the passphrase from \(source) is empty")
        }
        return value
    }

    /// The passphrase (asked when first needed) and keyslot a service unlocks with.
    var unlockSource: UnlockSource {
        UnlockSource(keyslot: keyslot, history: .standard()) { [self] in try passphrase() }
    }

    /// Prints a diagnostic when `--verbose` is on.
    func debug(_ text: @autoclosure () -> String) {
        if verbose { Terminal.note(text()) }
    }
}

/// The `--format text|json` option of commands that print listings or reports.
/// The vault options of commands that never need the passphrase (listings, status): the
/// vault and --verbose, without the passphrase options, which their help would otherwise
/// offer for nothing.
public struct VaultLocation: ParsableArguments, @unchecked Sendable {
    @Option(name: .customLong("vault"), help: ArgumentHelp("The vault: a file, or a postgres:// URL for a team vault (default: $KISVAULT_PATH, else $XDG_DATA_HOME/kisvault/vault.db).", valueName: "path-or-url"))
    var vaultPath: String?

    @Flag(help: "Print diagnostics to stderr.")
    var verbose = false

    public init() {}

    /// The same vault as full ``VaultOptions`` (no passphrase source among them).
    var options: VaultOptions {
        let arguments = (vaultPath.map { ["--vault", $0] } ?? []) + (verbose ? ["--verbose"] : [])
        return (try? VaultOptions.parse(arguments)) ?? VaultOptions.parseOrExit([])
    }
}

public struct OutputOptions: ParsableArguments {
    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @Flag(name: .customLong("json"), help: "Short for --format json.")
    var jsonFlag = false

    @Flag(name: .customLong("no-color"), help: "No colour, even on a terminal (also: NO_COLOR).")
    var noColor = false

    public init() {}

    var json: Bool { format == .json || jsonFlag }
}

/// The Argon2id strength names `init`, `keyslot add` and `passphrase change` accept.
enum KDFStrength: String, ExpressibleByArgument, CaseIterable {
    case interactive, moderate, sensitive
    /// Hidden from help: the cheapest parameters, for tests only.
    case insecureTest = "insecure-test"

    static var allValueStrings: [String] { ["interactive", "moderate", "sensitive"] }

    var parameters: KDFParameters {
        switch self {
        case .interactive: return .interactive
        case .moderate: return .moderate
        case .sensitive: return .sensitive
        case .insecureTest: return .insecureForTesting
        }
    }
}

/// Options that give a second, new passphrase (`passphrase change`, `keyslot add`).
struct NewPassphraseOptions: ParsableArguments {
    @Option(name: .customLong("new-passphrase-file"), help: ArgumentHelp("Read the new passphrase from the first line of this file.", valueName: "file"))
    var file: String?

    @Option(name: .customLong("new-passphrase-fd"), help: ArgumentHelp("Read the new passphrase from this inherited file descriptor.", valueName: "n"))
    var fd: Int32?

    /// The new passphrase: from the file or descriptor, else asked twice on the terminal.
    func read(what: String) throws(CLIError) -> SecureBytes {
        let value: SecureBytes
        if let fd { value = try SecretInput.passphrase(fd: fd) }
        else if let file { value = try SecretInput.passphrase(file: file) }
        else { value = try askTwice(what: what) }
        guard value.count > 0 else { throw .emptyPassphrase }
        return value
    }
}

/// Asks for a new passphrase twice on the terminal, forgivingly: a mismatch is asked
/// again (three tries in all), and a passphrase under ``shortPassphrase`` bytes needs a
/// confirmation, because a copy of the vault can be attacked offline.
func askTwice(what: String, tries: Int = 3) throws(CLIError) -> SecureBytes {
    for attempt in 1...tries {
        guard let typed = try SecretInput.prompt("New passphrase for \(what): ") else { throw .noPassphrase }
        guard typed.count > 0 else { throw .emptyPassphrase }
        if typed.count < shortPassphrase {
            guard let answer = try SecretInput.promptVisible("kisvault: this passphrase is short (\(typed.count) characters): anyone with a copy of the vault can try guesses offline. Use it anyway? [y/N] "),
                  answer.lowercased() == "y" || answer.lowercased() == "yes" else {
                if attempt == tries { throw .badInput("no passphrase chosen; nothing was changed") }
                Terminal.note("choose a longer one (\(tries - attempt) tries left)")
                continue
            }
        }
        guard let again = try SecretInput.prompt("Repeat it: ") else { throw .noPassphrase }
        if typed.constantTimeEquals(again) { return typed }
        if attempt < tries { Terminal.note("the passphrases do not match; try again (\(tries - attempt) tries left)") }
    }
    throw .passphraseMismatch
}

/// Passphrases shorter than this (in bytes) are confirmed on a terminal.
let shortPassphrase = 8
