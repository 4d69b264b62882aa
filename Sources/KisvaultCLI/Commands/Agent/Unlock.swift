import ArgumentParser
import CredentialService
import Foundation

/// `kisvault unlock`
struct Unlock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock",
        abstract: "Unlock a locked agent again, asking the passphrase once.",
        usage: "kisvault unlock [options]",
        discussion: """
            After 'kisvault lock', an idle or maximum-lifetime lock, the agent keeps running \
            but answers 'locked'; this unlocks it in place. The passphrase comes from the \
            usual sources and is handed to the agent over its socket, never through argv or \
            the environment.

            Example:
              kisvault lock; kisvault unlock
            """)

    @OptionGroup var socket: AgentCommand.SocketOptions
    @OptionGroup var options: VaultOptions

    func run() throws {
        let path = socket.path
        let status: AgentStatusAnswer
        do { status = try AgentControl.status(socket: path) } catch let error as AgentError where error.isUntrusted {
            // Not this user's agent: the passphrase is never read, let alone sent.
            throw error
        } catch {
            throw CLIError.notFound("no agent answers at \(path); start one with 'kisvault agent start'")
        }
        guard status.locked else {
            Terminal.note("the agent at \(path) is already unlocked")
            return
        }
        try AgentControl.unlock(socket: path, passphrase: try options.passphrase(), keyslot: options.keyslot)
        Terminal.note("agent unlocked")
    }
}
