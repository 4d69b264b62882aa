import ArgumentParser
import CredentialService
import Foundation

/// What the shell completes from the vault: account names and tags, read without a
/// passphrase (they are the vault's plain metadata) from the vault the command line names
/// (`--vault`), else the default one. Any failure completes nothing.
enum Completions {
    static let accounts = CompletionKind.custom { words, _, prefix in
        (try? open(words).accountNames())?.filter { $0.hasPrefix(prefix) } ?? []
    }

    static let tags = CompletionKind.custom { words, _, prefix in
        let all = (try? open(words).accounts())?.flatMap(\.tags) ?? []
        return Array(Set(all)).filter { $0.hasPrefix(prefix) }.sorted()
    }

    private static func open(_ words: [String]) -> VaultAdmin {
        let given = words.firstIndex(of: "--vault").flatMap { $0 + 1 < words.count ? words[$0 + 1] : nil }
        return VaultAdmin.metadata(path: VaultOptions.path(given: given), busyTimeout: 1)
    }
}
