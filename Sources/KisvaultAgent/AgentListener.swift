import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where the agent listens: a socket path it binds itself, or the listening socket systemd
/// handed it (``SocketActivation``).
enum AgentListenAddress: Sendable {
    case path(String)
    case descriptor(Int32)
}

/// The agent's HTTP/1.1 server: Hummingbird's channel and router behind an accept loop of
/// our own, because Hummingbird's `Application` binds addresses only and a socket-activated
/// agent is handed a socket already bound. Both ways of listening share everything after
/// the bind.
struct AgentListener: Sendable {
    let responder: RouterResponder<AgentContext>
    let configuration: HTTP1Channel.Configuration
    let logger: Logger

    /// Serves until cancelled. `onListening` runs once connections are accepted.
    func run(on address: AgentListenAddress, onListening: @escaping @Sendable () -> Void) async throws {
        let responder = self.responder, logger = self.logger
        let http = HTTP1Channel(responder: { request, writer, channel in
            let context = AgentContext(source: .init(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                // A request that cannot be read has no answer to give (as Application does).
                throw error
            } catch {
                logger.debug("request failed", metadata: ["error.type": "\(type(of: error))"])
                response = Response(status: .internalServerError)
            }
            response.headers[.server] = "kisvault-agent"
            try await writer.write(response: response.head, body: response.body)
        }, configuration: configuration)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
        let initialize: @Sendable (any Channel) -> EventLoopFuture<HTTP1Channel.Value> = { http.setup(channel: $0, logger: logger) }
        let server: NIOAsyncChannel<HTTP1Channel.Value, Never>
        switch address {
        case .path(let path):
            server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false, serverBackPressureStrategy: nil,
                                              childChannelInitializer: initialize)
        case .descriptor(let fd):
            server = try await bootstrap.bind(NIOBSDSocket.Handle(fd), serverBackPressureStrategy: nil, childChannelInitializer: initialize)
        }
        onListening()
        try await server.executeThenClose { inbound in
            await withDiscardingTaskGroup { group in
                do {
                    for try await connection in inbound {
                        group.addTask { await http.handle(value: connection, logger: logger) }
                    }
                } catch {
                    logger.error("the agent's socket stopped accepting", metadata: ["error.type": "\(type(of: error))"])
                }
            }
        }
    }
}
