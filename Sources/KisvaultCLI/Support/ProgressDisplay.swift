import Foundation
import CredentialService

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

    /// The progress as one line of at most `width` characters: fields are dropped, least
    /// useful first, until it fits (a line wider than the terminal wraps, and every
    /// redraw then starts a new line).
    func line(width: Int = 200) -> String {
        let (done, failed, skipped) = progress.counts
        let total = progress.total
        let elapsed = max(0.001, Date().timeIntervalSince(progress.started))
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? String(format: "ETA %.0fs", Double(total - done) / rate) : "ETA -"
        func bar(_ cells: Int) -> String {
            let filled = total > 0 ? cells * done / total : cells
            return "[" + String(repeating: "=", count: filled) + (filled < cells ? ">" + String(repeating: " ", count: cells - filled - 1) : "") + "]"
        }
        let counts = "\(done)/\(total)"
        let extras = [failed > 0 ? "\(failed) failed" : nil, skipped > 0 ? "\(skipped) skipped" : nil].compactMap { $0 }
        let candidates: [[String]] = [
            [label, bar(24), counts, String(format: "%.0f/s", rate)] + extras + [eta],
            [label, bar(16), counts] + extras + [eta],
            [label, bar(10), counts] + extras,
            [label, counts] + extras,
            [counts] + extras,
        ]
        for fields in candidates {
            let text = fields.joined(separator: "  ")
            if text.count <= width { return text }
        }
        return String(counts.prefix(max(1, width)))
    }

    /// The last counts printed off a terminal, and when.
    private var lastPlain: (counts: String, at: Date)?

    func draw(final: Bool) {
        if interactive {
            // One column short of the terminal: writing the last column moves some
            // terminals to the next line.
            let width = Terminal.columns(2) - 1
            Terminal.write(2, "\r\u{1B}[2K" + line(width: width) + (final ? "\n" : ""))
            return
        }
        // Off a terminal, a line only when the counts moved (or half a minute passed), so
        // a long wait is not sixty copies of the same line.
        let (done, failed, skipped) = progress.counts
        let counts = "\(done) \(failed) \(skipped)"
        let now = Date()
        lock.lock()
        let due = final || lastPlain.map { $0.counts != counts || now.timeIntervalSince($0.at) >= 30 } ?? true
        if due { lastPlain = (counts, now) }
        lock.unlock()
        if due { Terminal.write(2, "kisvault: " + line() + "\n") }
    }
}
