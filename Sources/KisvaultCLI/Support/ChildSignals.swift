import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a command kisvault starts gets of its signals: none blocked and every one at its
/// default. kisvault runs on Swift's worker threads, whose mask blocks almost every signal,
/// and a mask (like an ignored disposition) survives `exec`: without this a bot's SIGTERM
/// handler never ran and `timeout 2 sleep 6` took 6 s.
enum ChildSignals {
    /// Every signal number a handler can be set for (1 to SIGRTMAX, less SIGKILL and SIGSTOP).
    static var catchable: [Int32] {
        (1...Int32(64)).filter { $0 != SIGKILL && $0 != SIGSTOP }
    }

    /// Unblocks every signal on this thread and puts every disposition back to its default:
    /// called just before this process replaces itself with the command.
    static func resetForExec() {
        for number in catchable { signal(number, SIG_DFL) }
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
    }

    /// Sets `attributes` so a spawned child starts with an empty mask and default
    /// dispositions, whatever the spawning thread has.
    static func configure(_ attributes: inout posix_spawnattr_t) {
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in catchable { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    }
}
