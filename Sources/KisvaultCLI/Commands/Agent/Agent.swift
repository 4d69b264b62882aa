import ArgumentParser
import CredentialService
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `kisvault agent`
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Unlock once and serve credentials to every script of this user on a Unix socket.",
        subcommands: [Start.self, Stop.self, Status.self])

    /// `--socket`, shared by the agent commands and `lock`.
    struct SocketOptions: ParsableArguments {
        @Option(help: ArgumentHelp("The agent's socket (default: $KISVAULT_AGENT_SOCK, else $XDG_RUNTIME_DIR/kisvault/agent.sock).", valueName: "path"))
        var socket: String?

        var path: String { socket ?? AgentPaths.socket().path }
        /// Whether the path was asked for (`--socket` or `KISVAULT_AGENT_SOCK`), not the default.
        var explicit: Bool { socket != nil || AgentPaths.socket().explicit }
    }
}
