import ArgumentParser
import CredentialService
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension AgentCommand {
    /// `kisvault agent stop`
    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "Stop the agent; its keys are wiped and its socket removed.",
            usage: "kisvault agent stop [options]",
            discussion: "Example:\n  kisvault agent stop")
        @OptionGroup var socket: SocketOptions

        func run() throws {
            try AgentControl.stop(socket: socket.path)
            Terminal.note("agent stopped")
        }
    }
}
