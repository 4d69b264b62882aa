import ArgumentParser
import CredentialService
import Foundation

/// `kisvault account`
struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account",
        abstract: "Manage the KIS accounts (appkey/appsecret pairs) in the vault.",
        subcommands: [Add.self, List.self, Show.self, Edit.self, Rename.self, Remove.self, Import.self, Export.self])
}

/// `--env` takes exactly what its help lists: `real`, `mock`, and `paper` (KIS's word for
/// mock). Import files are more lenient (`prod`, `vps`, as the official sample says).
extension AccountEnvironment: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "real": self = .real
        case "mock", "paper": self = .mock
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["real", "mock", "paper"] }
}

/// A short, non-reversible view of a secret for display: the first four and last three
/// characters of an appkey (`PSab…uus`), only the length of anything longer.
func mask(_ secret: SecureBytes) -> String {
    if secret.count > 64 { return "(\(secret.count) characters)" }
    guard secret.count >= 12 else { return String(repeating: "•", count: secret.count) }
    return secret.withUnsafeBytes { b in
        String(decoding: b.prefix(4), as: UTF8.self) + "…" + String(decoding: b.suffix(3), as: UTF8.self)
    }
}

/// An account number shown with its first digits hidden (`••••5678-01`).
func maskAccountNumber(_ secret: SecureBytes) -> String {
    secret.withUnsafeBytes { b in
        String(repeating: "•", count: max(0, b.count - 7)) + String(decoding: b.suffix(7), as: UTF8.self)
    }
}
