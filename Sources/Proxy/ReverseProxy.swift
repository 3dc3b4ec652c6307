import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

/// Forwards HTTP requests to an upstream over pooled keep-alive connections, streaming bodies both ways.
public struct ReverseProxy: Sendable {
    public let client: HTTPClient

    /// Creates the shared client: per-host pools of keep-alive HTTP/1.1 connections, no redirects, no
    /// decompression (bodies pass through untouched).
    public static func makeClient(maxConnectionsPerHost: Int = 64) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(
            idleTimeout: .seconds(30),
            concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnectionsPerHost
        )
        configuration.timeout = .init(connect: .seconds(2), read: nil)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public init(client: HTTPClient) {
        self.client = client
    }

    /// Forwards `request` to `upstream` (e.g. `http://127.0.0.1:9000`) at `path` (with query), with at
    /// most `maxBodyBytes` of request body. Returns the upstream's response with a streamed body.
    public func forward(
        _ request: Request,
        upstream: String,
        path: String,
        maxBodyBytes: Int,
        timeout: Duration,
        extraHeaders: [(String, String)] = []
    ) async throws(ProxyError) -> Response {
        let length = request.headers[.contentLength].flatMap { Int($0) }
        if let length, length > maxBodyBytes { throw .bodyTooLarge(maxBodyBytes) }
        var outbound = HTTPClientRequest(url: upstream + path)
        outbound.method = NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue)
        for (name, value) in HopByHopHeaders.endToEnd(request.headers) {
            outbound.headers.add(name: name, value: value)
        }
        for (name, value) in extraHeaders { outbound.headers.replaceOrAdd(name: name, value: value) }
        let hasBody = length.map { $0 > 0 } ?? (request.headers[.transferEncoding] != nil)
        if hasBody {
            let limited = LimitedBody(base: request.body, limit: maxBodyBytes)
            outbound.body = .stream(limited, length: length.map { .known(Int64($0)) } ?? .unknown)
        }
        let response: HTTPClientResponse
        do {
            response = try await self.client.execute(
                outbound,
                deadline: .now() + .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
            )
        } catch let error as LimitedBody.TooLarge {
            _ = error
            throw .bodyTooLarge(maxBodyBytes)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw .timeout("upstream did not answer within \(timeout)")
        } catch let error as HTTPClientError where error == .remoteConnectionClosed || error == .connectTimeout {
            throw .unreachable("upstream closed the connection: \(error)")
        } catch {
            if "\(error)".contains("TooLarge") { throw .bodyTooLarge(maxBodyBytes) }
            throw .unreachable("upstream request failed: \(error)")
        }
        var fields = HTTPFields()
        for header in response.headers {
            let lower = header.name.lowercased()
            if HopByHopHeaders.names.contains(lower) { continue }
            if let name = HTTPField.Name(header.name) { fields.append(HTTPField(name: name, value: header.value)) }
        }
        let contentLength = response.headers.first(name: "content-length").flatMap(Int.init)
        let body = response.body
        return Response(
            status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
            headers: fields,
            body: ResponseBody(contentLength: contentLength) { writer in
                for try await chunk in body { try await writer.write(chunk) }
                try await writer.finish(nil)
            }
        )
    }
}

/// A request body that fails once more than `limit` bytes have streamed through.
struct LimitedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    struct TooLarge: Error {}

    let base: RequestBody
    let limit: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let limit: Int
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let buffer = try await self.base.next() else { return nil }
            self.seen += buffer.readableBytes
            if self.seen > self.limit { throw TooLarge() }
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator(), limit: self.limit)
    }
}
