import ArgumentParser
import Foundation
import KisvaultAgent
import VaultCrypto
import VaultStore

/// `kisvault unlock`
struct Unlock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock",
        abstract: "Unlock a locked agent again, asking the passphrase once.",
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
        let status: AgentClient.Response
        do { status = try AgentClient.request(socket: path, method: "GET", target: "/v1/status", timeout: 5) } catch {
            throw CLIError.notFound("no agent answers at \(path); start one with 'kisvault agent start'")
        }
        guard status.json?["locked"] as? Bool == true else {
            Terminal.note("the agent at \(path) is already unlocked")
            return
        }
        let passphrase = try options.passphrase()
        var body = passphrase.withUnsafeBytes { Array($0) }
        defer { body.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let target = "/v1/unlock" + (options.keyslot.map { "?keyslot=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" } ?? "")
        let response = try AgentClient.request(socket: path, method: "POST", target: target, body: body, timeout: 60)
        guard response.status == 200 else {
            let code = (response.json?["error"] as? String).flatMap(ErrorCode.init(rawValue:)) ?? .vaultError
            throw AgentCallError(code: code, message: Terminal.escape(response.json?["message"] as? String ?? "the agent refused (HTTP \(response.status))"))
        }
        Terminal.note("agent unlocked")
    }
}
