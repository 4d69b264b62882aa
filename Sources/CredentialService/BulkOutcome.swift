import KeyManager

/// What a bulk run's results come to, for its caller: how many accounts were stored,
/// issued at KIS but not stored, not attempted, or failed, and the code the run as a whole
/// answers with.
public struct BulkOutcome: Sendable, Equatable {
    public let total: Int
    /// Issued or rotated, and stored.
    public let stored: Int
    /// Issued at KIS, then not stored (the vault could not be written).
    public let notStored: Int
    /// Never sent (the run stopped: interrupted, locked, the vault failed).
    public let notAttempted: Int
    public let failed: Int
    /// Every account failed because KIS could not be reached or gave no usable answer.
    public let kisUnreachable: Bool

    public init(_ results: [BulkItemResult]) {
        total = results.count
        stored = results.filter { $0.status == .issued || $0.status == .rotated }.count
        notStored = results.filter { $0.errorCode == BulkItemResult.notStoredCode }.count
        notAttempted = results.filter { $0.errorCode == BulkItemResult.notAttemptedCode }.count
        let failures = results.filter { $0.status == .failed }
        failed = failures.count
        kisUnreachable = !failures.isEmpty && failures.count == results.count
            && failures.allSatisfy { [BulkItemResult.unreachableCode, BulkItemResult.unavailableCode].contains($0.errorCode ?? "") }
    }

    /// The run's code: none when every account is fine (issued, rotated or skipped);
    /// `kis_unavailable` when KIS was reached for none; else `partial`.
    public var code: ErrorCode? {
        if failed == 0 { return nil }
        return kisUnreachable ? .kisUnavailable : .partial
    }
}
