import ArgumentParser
import CredentialService
import Foundation

/// `kisvault status`
struct StatusOverview: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The vault, the agent and the credentials at a glance (no passphrase needed).",
        usage: "kisvault status [options]",
        discussion: """
            The vault (where, format, accounts, keyslots), the agent (running, locked, the KIS \
            URLs it talks to), and how many approval keys and tokens are fresh, expiring \
            (under 10 minutes left), expired, none or rejected. 'approval status' and \
            'token status' list them per account.

            Example:
              kisvault status --format json
            """)
    @OptionGroup var location: VaultLocation
        var options: VaultOptions { location.options }
    @OptionGroup var output: OutputOptions
    @OptionGroup var socket: AgentCommand.SocketOptions

    struct Overview: Encodable {
        struct AgentPart: Encodable {
            var running: Bool
            var locked: Bool?
            var lockReason: String?
            var pid: Int?
            var kisURLs: KISURLs?
            var servesThisVault: Bool?
        }
        var vault: VaultAdmin.Overview
        var agent: AgentPart
        var approvalKeys: [String: Int]
        var tokens: [String: Int]
    }

    func run() async throws {
        let part = try options.admin.overview()
        var counts: [CredentialKind: [String: Int]] = [:]
        try await Services.with(options, nil) { service in
            let now = try await service.clock()
            for kind in [CredentialKind.approval, .token] {
                var byState = Dictionary(uniqueKeysWithValues: CredentialState.allCases.map { ($0.rawValue, 0) })
                for status in try await service.status(kind, tag: nil) {
                    byState[status.state(at: now).rawValue, default: 0] += 1
                }
                counts[kind] = byState
            }
        }
        let agent: Overview.AgentPart
        if let answer = try? AgentControl.status(socket: socket.path, timeout: 2) {
            agent = .init(running: true, locked: answer.locked, lockReason: answer.lockReason, pid: answer.pid, kisURLs: answer.kisURLs,
                          servesThisVault: answer.vault == part.path)
        } else {
            agent = .init(running: false)
        }
        let overview = Overview(vault: part, agent: agent, approvalKeys: counts[.approval] ?? [:], tokens: counts[.token] ?? [:])
        if output.json {
            try Terminal.json(overview)
            return
        }
        func line(_ byState: [String: Int]) -> String {
            CredentialState.allCases.map { "\(byState[$0.rawValue] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        }
        let agentText: String
        if agent.running {
            let state = agent.locked == true ? "locked (\(Terminal.escape(agent.lockReason ?? "?")))" : "unlocked"
            let urls = agent.kisURLs.map { "KIS real \(Terminal.escape($0.real)), mock \(Terminal.escape($0.mock))" } ?? ""
            agentText = "running, \(state), pid \(agent.pid ?? 0), \(urls)" + (agent.servesThisVault == false ? "; serves another vault" : "")
        } else {
            agentText = "not running ('kisvault agent start' to unlock once for every script)"
        }
        try Terminal.out("""
            vault:          \(Terminal.escape(part.path)) (format \(part.format), \(part.accounts) accounts, \(part.keyslots) keyslots)
            agent:          \(agentText)
            approval keys:  \(line(overview.approvalKeys))
            tokens:         \(line(overview.tokens))
            """)
    }
}
