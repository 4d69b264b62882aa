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
    /// `kisvault agent stop`
    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "Stop the agent; its keys are wiped and its socket removed.",
            discussion: "Example:\n  kisvault agent stop")
        @OptionGroup var socket: SocketOptions

        func run() throws {
            _ = try AgentClient.request(socket: socket.path, method: "POST", target: "/v1/stop")
            for _ in 0..<100 where FileManager.default.fileExists(atPath: socket.path) { usleep(20_000) }
            Terminal.note("agent stopped")
        }
    }
}
