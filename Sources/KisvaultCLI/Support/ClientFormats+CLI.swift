import ArgumentParser
import ClientFormats
import CredentialService
import Foundation

extension TokenFileFormat: ExpressibleByArgument {}

extension KISYAMLWriter {
    /// The file with the URLs of the environment (`KISVAULT_KIS_*`) and this build as its
    /// user agent.
    static func text(_ accounts: [(AccountSummary, AccountSecrets)]) throws -> String {
        try text(accounts, urls: try KISURLs.fromEnvironment(), agent: agent)
    }

    static func text(_ entries: [Entry]) throws -> String {
        try text(entries, urls: try KISURLs.fromEnvironment(), agent: agent)
    }

    private static var agent: String { "kisvault/\(Kisvault.version)" }
}
