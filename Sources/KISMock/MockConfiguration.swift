import Foundation

/// The faults `kis-mock` can inject, each reproducible from the seed.
public enum MockFault: String, Sendable, CaseIterable, Codable {
    /// HTTP 500 with `EGW00001` or `EGW00002` in KIS's JSON shape.
    case serverError = "server-error"
    /// HTTP 502 with an HTML page, as a proxy in front of KIS answers.
    case html
    /// HTTP 200 with JSON cut off in the middle.
    case truncated
    /// HTTP 200 with an empty body.
    case empty
    /// The connection is closed before any response.
    case drop
    /// No answer until well past any sane client timeout.
    case stall
    /// HTTP 200 at once, then its body one byte a second: a client that only times out an
    /// idle connection waits minutes.
    case drip
    /// HTTP 200 whose approval key or token carries terminal escapes and a newline, as a
    /// hostile server (or a man in the middle of a test URL) might send.
    case hostileKey = "hostile-key"
    /// HTTP 403 EGW00103 whose `error_description` carries terminal escapes.
    case hostileError = "hostile-error"
}

/// How a mock server behaves.
public struct MockConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port.
    public var port: Int = 0
    public var accounts: [MockAccount] = []
    /// When set, the server plays only this environment's host and refuses the other's
    /// appkeys with EGW00103, as KIS's real host refuses a paper appkey.
    public var environment: String?
    /// Added to every answer (milliseconds).
    public var latencyMilliseconds: Double = 0
    /// A uniform random extra of up to this many milliseconds.
    public var latencyJitterMilliseconds: Double = 0
    /// The share of requests (0...1) answered with an injected fault.
    public var failRate: Double = 0
    /// The faults to draw from; empty means `server-error`.
    public var faults: [MockFault] = []
    public var seed: UInt64 = 1
    /// How long a `stall` fault holds the request (seconds).
    public var stallSeconds: Double = 30
    /// Per-second request limits per appkey (KIS-API.md: about 20 real, 2 mock).
    public var perSecondLimitReal = 20
    public var perSecondLimitMock = 2
    /// KIS is reported to answer a handed-back token's `expires_in` as a full 86400 instead
    /// of what is left (KIS-API.md, observed): off by default.
    public var expiresInQuirk = false
    /// Also listen for KIS's WebSocket protocol (on a port of its own).
    public var webSocket = true
    /// The WebSocket's port (0 picks a free one).
    public var webSocketPort = 0
    /// How often a WebSocket session gets a PINGPONG frame.
    public var webSocketPingSeconds: Double = 10

    public init() {}
}
