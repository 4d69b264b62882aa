import ArgumentParser
import Foundation
import HummingbirdWSClient
import KISAPI
import KISMock
import Logging
import NIOWebSocket

/// `kis-mock`: a fake KIS authentication server for tests, benchmarks and the demo.
struct KISMockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kis-mock",
        abstract: "A fake KIS Open API authentication server on loopback, with fault injection.",
        subcommands: [Serve.self, Generate.self, Load.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write N accounts with valid-looking credentials in kisvault's import format.",
            discussion: "Example:\n  kis-mock generate --count 1000 --env mock > accounts.csv")

        @Option(help: "How many accounts.") var count: Int
        @Option(help: "real or mock.") var env: String = "mock"
        @Option(help: "csv or json.") var format: String = "csv"
        @Option(help: "Account name prefix.") var prefix = "acct"
        @Option(help: "Seed for reproducible credentials.") var seed: UInt64 = 1

        func validate() throws {
            guard count >= 0 else { throw ValidationError("--count must be zero or more") }
            guard ["real", "mock"].contains(env) else { throw ValidationError("--env must be real or mock") }
            guard ["csv", "json"].contains(format) else { throw ValidationError("--format must be csv or json") }
        }

        func run() throws {
            let accounts = MockAccounts.generate(count: count, environment: env, prefix: prefix, seed: seed)
            let text = format == "json" ? try MockAccounts.json(accounts) : MockAccounts.csv(accounts)
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// A load generator built on kisvault's own KIS client, for the benchmarks: how many
    /// approvals a mock serves, and what the client costs per request.
    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send approval requests to a mock with kisvault's KIS client; print JSON timings.",
            discussion: "Example:\n  kis-mock load --url http://127.0.0.1:8080 --accounts accounts.csv --requests 20000 --concurrency 64")

        @Option(help: "The mock's base URL.") var url: String
        @Option(help: "Accounts file the mock serves.") var accounts: String
        @Option(help: "Requests in all.") var requests = 10_000
        @Option(help: "Requests in flight at once.") var concurrency = 64
        @Option(name: .customLong("websocket"), help: ArgumentHelp("Instead: WebSocket checks (session, register, unregister, close) at this URL, one session per account.", valueName: "ws-url"))
        var webSocket: String?

        func run() async throws {
            let list = try MockAccounts.load(path: accounts)
            guard !list.isEmpty else { throw ValidationError("no accounts in \(accounts)") }
            var configuration = KISClientConfiguration(endpoints: KISEndpoints(both: url))
            configuration.retry = .none
            let client = try KISClient(configuration: configuration)
            if let webSocket {
                try await sessions(client: client, accounts: list, url: webSocket)
                await client.shutdown()
                return
            }
            let cpuBefore = cpuSeconds()
            let started = ContinuousClock.now
            let failures = await withTaskGroup(of: Int.self) { group in
                let perWorker = requests / concurrency
                for worker in 0..<concurrency {
                    group.addTask {
                        var failed = 0
                        for i in 0..<perWorker {
                            let a = list[(worker * perWorker + i) % list.count]
                            do {
                                _ = try await client.approvalKey(environment: a.environment == "real" ? .real : .mock, appkey: a.appkey, secret: a.appsecret)
                            } catch { failed += 1 }
                        }
                        return failed
                    }
                }
                return await group.reduce(0, +)
            }
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            let cpu = cpuSeconds() - cpuBefore
            await client.shutdown()
            let sent = (requests / concurrency) * concurrency
            print(#"{"requests": \#(sent), "failed": \#(failures), "seconds": \#(seconds), "per_second": \#(Double(sent) / seconds), "client_cpu_us_per_request": \#(cpu / Double(sent) * 1e6)}"#)
        }

        /// `requests` checks by `concurrency` workers, each on an account (and so an appkey)
        /// of its own, as KIS allows one session per appkey; prints the latency of one
        /// check (median, 99th percentile) and the approval request's beside it.
        func sessions(client: KISClient, accounts list: [MockAccount], url: String) async throws {
            guard list.count >= concurrency else { throw ValidationError("--websocket needs an account per session: \(concurrency) sessions, \(list.count) accounts") }
            var keys: [String] = []
            var approvalMicros: [Double] = []
            for account in list.prefix(concurrency) {
                let started = ContinuousClock.now
                keys.append(try await client.approvalKey(environment: account.environment == "real" ? .real : .mock, appkey: account.appkey, secret: account.appsecret).key)
                approvalMicros.append((ContinuousClock.now - started) / .microseconds(1))
            }
            let perWorker = max(1, requests / concurrency)
            let started = ContinuousClock.now
            let (micros, failed) = await withTaskGroup(of: ([Double], Int).self) { group in
                for key in keys {
                    group.addTask {
                        var times: [Double] = [], failed = 0
                        for _ in 0..<perWorker {
                            let began = ContinuousClock.now
                            if await KISWebSocketCheck.check(url: url, approvalKey: key, timeout: 30) != .ok { failed += 1 }
                            times.append((ContinuousClock.now - began) / .microseconds(1))
                        }
                        return (times, failed)
                    }
                }
                return await group.reduce(into: ([Double](), 0)) { $0.0 += $1.0; $0.1 += $1.1 }
            }
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            // The subscribe round trip alone: one session per key, register and unregister
            // in turn, each registration timed from send to acknowledgement.
            let subscribeMicros = await withTaskGroup(of: [Double].self) { group in
                for key in keys {
                    group.addTask { (try? await Self.subscribeRoundTrips(url: url, key: key, count: perWorker)) ?? [] }
                }
                return await group.reduce(into: [Double]()) { $0 += $1 }
            }
            func percentile(_ values: [Double], _ p: Double) -> Double {
                let sorted = values.sorted()
                return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            }
            print(#"{"checks": \#(micros.count), "failed": \#(failed), "sessions_at_once": \#(concurrency), "seconds": \#(seconds), "check_p50_ms": \#(percentile(micros, 0.5) / 1000), "check_p99_ms": \#(percentile(micros, 0.99) / 1000), "approval_request_p50_ms": \#(percentile(approvalMicros, 0.5) / 1000), "subscribes": \#(subscribeMicros.count), "subscribe_p50_ms": \#(percentile(subscribeMicros, 0.5) / 1000), "subscribe_p99_ms": \#(percentile(subscribeMicros, 0.99) / 1000)}"#)
        }

        static func subscribeRoundTrips(url: String, key: String, count: Int) async throws -> [Double] {
            let times = Times()
            var logger = Logger(label: "load")
            logger.logLevel = .critical
            try await WebSocketClient.connect(url: url + "/tryitout/H0STCNT0", logger: logger) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                for _ in 0..<count {
                    let began = ContinuousClock.now
                    try await outbound.write(.text(KISWebSocketCheck.frame(approvalKey: key, register: true)))
                    while let message = try await messages.next() {
                        if case .text(let text) = message, text.hasPrefix("{"), text.contains("SUBSCRIBE") { break }
                    }
                    times.add((ContinuousClock.now - began) / .microseconds(1))
                    try await outbound.write(.text(KISWebSocketCheck.frame(approvalKey: key, register: false)))
                    while let message = try await messages.next() {
                        if case .text(let text) = message, text.contains("UNSUBSCRIBE") { break }
                    }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
            return times.all
        }

        final class Times: @unchecked Sendable {
            private let lock = NSLock()
            private var values: [Double] = []
            func add(_ value: Double) { lock.withLock { values.append(value) } }
            var all: [Double] { lock.withLock { values } }
        }

        func cpuSeconds() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the KIS auth endpoints and WebSocket; stdout says 'listening on URL', then 'websocket on ws://...'.",
            discussion: """
                Serves the OAuth endpoints, POST /uapi/hashkey and GET /uapi/domestic-stock/v1/quotations/inquire-price, \
                and KIS's WebSocket on a port of its own (--ws-port; paths /, /tryitout, /tryitout/<tr_id>) and on the REST port. \
                Faults: server-error, html, truncated, empty, drop, stall, drip, hostile-key, hostile-error (repeatable --fault, drawn \
                at --fail-rate). Test hooks: GET /__mock/stats, POST /__mock/clock/advance?seconds=N, \
                POST /__mock/reset, POST /__mock/next-error.

                Example:
                  kis-mock serve --port 0 --accounts accounts.csv --latency-ms 50
                """)

        @Option(help: "Port (0 picks a free one).") var port = 0
        @Option(help: "Address to bind.") var host = "127.0.0.1"
        @Option(help: "Accounts file (CSV or JSON, kisvault's import format).") var accounts: String?
        @Option(help: "Play only this environment's host: real or mock.") var env: String?
        @Option(name: .customLong("latency-ms"), help: "Added latency per request.") var latency: Double = 0
        @Option(name: .customLong("latency-jitter-ms"), help: "Random extra latency, up to this.") var jitter: Double = 0
        @Option(name: .customLong("fail-rate"), help: "Share of requests (0-1) answered with a fault.") var failRate: Double = 0
        @Option(name: .customLong("fault"), help: "A fault kind to inject (repeatable).") var faults: [String] = []
        @Option(help: "Seed for fault injection.") var seed: UInt64 = 1
        @Option(name: .customLong("stall-seconds"), help: "How long a stall fault holds a request.") var stallSeconds: Double = 30
        @Option(name: .customLong("ws-port"), help: "The WebSocket's port (0 picks a free one).") var wsPort = 0
        @Option(name: .customLong("ws-ping-seconds"), help: "How often a WebSocket session gets PINGPONG.") var wsPing: Double = 10
        @Flag(name: .customLong("expires-in-quirk"), help: "Answer a handed-back token's expires_in as a full 86400, as KIS is reported to.")
        var expiresInQuirk = false

        func validate() throws {
            for fault in faults where MockFault(rawValue: fault) == nil {
                throw ValidationError("unknown fault '\(fault)': use \(MockFault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let env, !["real", "mock"].contains(env) { throw ValidationError("--env must be real or mock") }
            guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate must be between 0 and 1") }
            guard wsPing >= 0.05 else { throw ValidationError("--ws-ping-seconds must be at least 0.05") }
        }

        func run() async throws {
            var configuration = MockConfiguration()
            configuration.host = host
            configuration.port = port
            configuration.environment = env
            configuration.latencyMilliseconds = latency
            configuration.latencyJitterMilliseconds = jitter
            configuration.failRate = failRate
            configuration.expiresInQuirk = expiresInQuirk
            configuration.faults = faults.compactMap(MockFault.init(rawValue:))
            configuration.seed = seed
            configuration.stallSeconds = stallSeconds
            configuration.webSocketPort = wsPort
            configuration.webSocketPingSeconds = wsPing
            if let accounts { configuration.accounts = try MockAccounts.load(path: accounts) }
            let server = try await KISMockServer.start(configuration)
            FileHandle.standardOutput.write(Data("listening on \(server.baseURL)\nwebsocket on \(server.webSocketURL ?? "-")\n".utf8))
            // The mock keeps nothing worth saving: SIGTERM/SIGINT end it at once, which closes
            // the listening socket with the process.
            for sig in [SIGTERM, SIGINT] { signal(sig) { _ in _exit(0) } }
            try await server.wait()
        }
    }
}

extension KISMockCommand {
    /// Parses and runs, awaiting async subcommands (`serve`).
    static func runMain() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

await KISMockCommand.runMain()
