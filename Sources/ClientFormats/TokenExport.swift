import CredentialService
import Foundation

extension TokenFiles {
    /// `token export`: writes the access token of `account` into the file `format`'s
    /// client reads, in `directory` (else where that client looks), through a temporary
    /// file and a rename. What the file is named after (the appkey, for pykis) is checked
    /// before a token is asked for; the token outlives `minTTL` plus the reader's own
    /// margin. Answers the file's path and the token's expiry.
    public static func export(_ format: TokenFileFormat, account: String, minTTL: TimeInterval, into directory: String?,
                              service: AgentFirstService, now: Date = Date()) async throws -> (path: String, expiresAt: Date) {
        let app = format.needsApp ? try await service.appCredentials(account: account, purpose: .export, detail: format.rawValue) : nil
        if format == .pykis, let app { _ = try pykisID(app, account: account) }
        // The file says the token ends `minTTL` early, and the reader drops it its own
        // margin before that: the token must outlive both.
        let issued = try await service.credential(.token, account: account, minTTL: minTTL + format.readerMargin)
        let token = try issued.checkedText(account: account)
        let directory = directory ?? format.defaultDirectory(ProcessInfo.processInfo.environment)
        let file = try file(format: format, Input(account: account, token: token, expiresAt: issued.expiresAt, margin: minTTL, now: now, app: app))
        try AtomicFile.makeTokenDirectory(directory)
        var data = file.contents
        defer { data.resetBytes(in: 0..<data.count) }
        let path = directory + "/" + file.name
        try AtomicFile.write(data, to: path)
        return (path, issued.expiresAt)
    }
}
