import Foundation
import KeyManager

/// The progress of a bulk run on stderr: a redrawn bar on a terminal, a plain line every
/// few seconds otherwise, nothing with `--quiet`.
final class ProgressDisplay: @unchecked Sendable {
    let progress: BulkProgress
    let label: String
    let enabled: Bool
    let interactive = Terminal.isTerminal(2)
    private var timer: (any DispatchSourceTimer)?
    private let lock = NSLock()

    init(progress: BulkProgress, label: String, enabled: Bool) {
        self.progress = progress
        self.label = label
        self.enabled = enabled
    }

    func start() {
        guard enabled, progress.total > 0 else { return }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        let interval: DispatchTimeInterval = interactive ? .milliseconds(100) : .seconds(2)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.draw(final: false) }
        timer.resume()
        lock.lock(); self.timer = timer; lock.unlock()
    }

    func stop() {
        lock.lock()
        let timer = self.timer
        self.timer = nil
        lock.unlock()
        guard let timer else { return }
        timer.cancel()
        draw(final: true)
    }

    func line() -> String {
        let (done, failed, skipped) = progress.counts
        let total = progress.total
        let elapsed = max(0.001, Date().timeIntervalSince(progress.started))
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 24
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        return String(format: "%@ [%@] %d/%d  %.0f/s  %d failed  %d skipped  ETA %.0fs", label, bar, done, total, rate, failed, skipped, eta)
    }

    func draw(final: Bool) {
        if interactive {
            Terminal.write(2, "\r\u{1B}[2K" + line() + (final ? "\n" : ""))
        } else {
            Terminal.write(2, "kisvault: " + line() + "\n")
        }
    }
}
