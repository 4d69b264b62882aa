#if canImport(Glibc)
import Glibc
#endif

/// What a crash signal does to the agent (a real fault, or SIGSEGV, SIGBUS, SIGILL, SIGFPE,
/// SIGTRAP, SIGSYS, SIGABRT or SIGQUIT sent with kill): it ends at once, taking its keys
/// with it, and removes its socket. The Swift runtime's own handler would print a backtrace
/// with register and memory contents (in an agent, perhaps key material) and, for a signal
/// sent with kill, return to serving unlocked. No core is written (RLIMIT_CORE is 0).
enum CrashSignals {
    nonisolated(unsafe) static var socketPath: UnsafeMutablePointer<CChar>?

    /// `socket`: the path to remove on a crash; nil when the socket is not ours to remove
    /// (systemd's, under socket activation).
    static func install(socket: String?) {
        socketPath = socket.map { strdup($0) }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { number in
            // Only async-signal-safe calls: unlink, signal, raise.
            if let path = CrashSignals.socketPath { unlink(path) }
            signal(number, SIG_DFL)
            raise(number)
        }
        sigemptyset(&action.sa_mask)
        for number in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT, SIGQUIT] {
            sigaction(number, &action, nil)
        }
    }
}
