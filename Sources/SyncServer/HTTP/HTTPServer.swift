import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServerSupport

/// A request with its whole body (backend requests are small: JSON pipelines and pull requests).
struct HTTPRequest: Sendable {
    var method: HTTPMethod
    var path: String
    var headers: HTTPHeaders
    var body: [UInt8]
}

/// A response: a complete body, or a body streamed with backpressure (chunked).
struct HTTPResponse: Sendable {
    enum Body: Sendable {
        case bytes([UInt8])
        case stream(@Sendable (ResponseBodyWriter) async throws -> Void)
    }

    var status: HTTPResponseStatus
    var contentType: String
    var body: Body

    static func json(_ status: HTTPResponseStatus, _ bytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: .bytes(bytes))
    }

    static func error(_ status: HTTPResponseStatus, _ message: String, code: String) -> HTTPResponse {
        let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: " ")
        return .json(status, Array("{\"error\":{\"message\":\"\(escaped)\",\"code\":\"\(code)\"}}".utf8))
    }
}

/// Writes a streamed body; each write waits for the socket to accept more (backpressure).
struct ResponseBodyWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    func write(_ bytes: [UInt8]) async throws {
        try await self.outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
    }
}

/// A small HTTP/1.1 server with keep-alive on SwiftNIO: reads each request whole (bounded), hands it to
/// `handler`, writes the response. Connections are served concurrently; requests on one connection in
/// order.
struct HTTPServer: Sendable {
    let host: String
    let port: Int
    let maxBodyBytes: Int
    /// When set, requests without it in `BackendSecret.headerName` are refused (401) unread.
    let secret: String?
    /// A connection that receives nothing for this long is closed. Default 10 minutes.
    var idleTimeout: TimeAmount = .minutes(10)
    let logger: Logger
    let handler: @Sendable (HTTPRequest) async -> HTTPResponse

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// Binds the listener. Throws when the address is taken.
    func bind() async throws -> NIOAsyncChannel<Connection, Never> {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Idle or trickling clients are disconnected (long-polls are bounded well below this).
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: self.idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(CloseOnIdleHandler())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Serves connections until the listener closes or the task is cancelled.
    func serve(_ listener: NIOAsyncChannel<Connection, Never>) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await listener.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection: connection) }
                }
            }
        }
    }

    private func serve(connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                var authorized = true
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body.removeAll(keepingCapacity: true)
                        tooLarge = false
                        authorized =
                            self.secret.map { constantTimeEquals(h.headers[BackendSecret.headerName].first ?? "", $0) }
                            ?? true
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > self.maxBodyBytes {
                            tooLarge = true
                        } else if !tooLarge && authorized {
                            body.append(contentsOf: buffer.readableBytesView)
                        }
                    case .end:
                        guard let requestHead = head else { return }
                        let response: HTTPResponse
                        if !authorized {
                            response = .error(
                                .unauthorized,
                                "this backend serves only the node that started it",
                                code: "UNAUTHORIZED"
                            )
                        } else if tooLarge {
                            response = .error(
                                .payloadTooLarge,
                                "request body exceeds \(self.maxBodyBytes) bytes",
                                code: "BODY_TOO_LARGE"
                            )
                        } else {
                            response = await self.handler(
                                HTTPRequest(
                                    method: requestHead.method,
                                    path: requestHead.uri,
                                    headers: requestHead.headers,
                                    body: body
                                )
                            )
                        }
                        let keepAlive = requestHead.isKeepAlive && !tooLarge && authorized
                        try await self.write(response, version: requestHead.version, keepAlive: keepAlive, to: outbound)
                        if !keepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            self.logger.debug("connection ended", metadata: ["http.error": "\(error)"])
        }
    }

    private func write(
        _ response: HTTPResponse,
        version: HTTPVersion,
        keepAlive: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var head = HTTPResponseHead(version: version, status: response.status)
        head.headers.add(name: "content-type", value: response.contentType)
        head.headers.add(name: "connection", value: keepAlive ? "keep-alive" : "close")
        switch response.body {
        case .bytes(let bytes):
            head.headers.add(name: "content-length", value: String(bytes.count))
            try await outbound.write(.head(head))
            if !bytes.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes)))) }
            try await outbound.write(.end(nil))
        case .stream(let produce):
            head.headers.add(name: "transfer-encoding", value: "chunked")
            try await outbound.write(.head(head))
            try await produce(ResponseBodyWriter(outbound: outbound))
            try await outbound.write(.end(nil))
        }
    }
}

/// Closes a connection when `IdleStateHandler` reports that nothing was read for too long.
final class CloseOnIdleHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
