import ArgumentParser
import CredentialService
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `kisvault lock`
struct Lock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Make the agent forget the vault's keys; it answers 'locked' until 'kisvault unlock'.",
        usage: "kisvault lock [options]",
        discussion: "Example:\n  kisvault lock")
    @OptionGroup var socket: AgentCommand.SocketOptions

    func run() throws {
        try AgentControl.lock(socket: socket.path)
        Terminal.note("agent locked")
    }
}
