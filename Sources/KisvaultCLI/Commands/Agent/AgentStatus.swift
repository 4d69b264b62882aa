import ArgumentParser
import Foundation
import KisvaultAgent
import Logging
import VaultCrypto
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

extension AgentCommand {
    /// `kisvault agent status`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show whether an agent runs, for which vault, and whether it is locked.",
            discussion: "Exits 4 when no agent answers, 3 when it is locked.\n\nExample:\n  kisvault agent status --format json")
        @OptionGroup var socket: SocketOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let response = try AgentClient.request(socket: socket.path, method: "GET", target: "/v1/status")
            let status = response.json ?? [:]
            if output.json {
                try Terminal.json(object: status)
            } else {
                let locked = status["locked"] as? Bool == true
                let urls = status["kis_urls"] as? [String: String] ?? [:]
                func text(_ key: String) -> String { Terminal.escape(status[key] as? String ?? "?") }
                try Terminal.out("""
                    socket:  \(Terminal.escape(socket.path))
                    vault:   \(text("vault"))
                    pid:     \(status["pid"] as? Int ?? 0)
                    started: \(text("started_at"))
                    kis:     real \(Terminal.escape(urls["real"] ?? "?")), mock \(Terminal.escape(urls["mock"] ?? "?"))
                    state:   \(locked ? "locked (\(text("lock_reason")))" : "unlocked")
                    """)
            }
            if status["locked"] as? Bool == true { throw ExitCode(KisvaultExit.locked.rawValue) }
        }
    }
}
