import CredentialService
import Foundation

/// The credential service a command speaks to (``AgentFirstService``: a running agent's
/// answers, else this process's), made from the command's options, its notes on stderr.
enum Services {
    /// Runs `body` with the service; `manager` is nil for commands that never talk to KIS.
    static func with<T>(_ options: VaultOptions, _ manager: ManagerOptions?, _ body: (AgentFirstService) async throws -> T) async throws -> T {
        let settings = manager?.settings(busyTimeout: options.busyTimeout) ?? LocalCredentialService.Settings(busyTimeout: options.busyTimeout)
        let verbose = options.verbose
        let notes = AgentFirstService.Notes(note: { Terminal.note($0) }, debug: { if verbose { Terminal.note($0) } },
                                            waitNotices: Terminal.isTerminal(2))
        return try await AgentFirstService.with(vaultPath: options.path, settings: settings, unlock: options.unlockSource, notes: notes, body)
    }
}
