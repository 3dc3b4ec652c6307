import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// Forwards HTTP requests to an upstream over pooled keep-alive connections, streaming bodies both ways.
public struct ReverseProxy: Sendable {
    public let client: HTTPClient
    /// Request bodies up to this size (with a Content-Length) are read whole before forwarding.
    static let bufferedBodyLimit = 4 << 20

    /// Creates the shared client: per-host pools of keep-alive HTTP/1.1 connections, no redirects, no
    /// decompression (bodies pass through untouched).
    /// `tls`, when given, is used for `https://` upstreams (mutual TLS between nodes).
    public static func makeClient(maxConnectionsPerHost: Int = 64, tls: TLSConfiguration? = nil) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = tls
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(
            idleTimeout: .seconds(30),
            concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnectionsPerHost
        )
        configuration.timeout = .init(connect: .seconds(2), read: nil)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Reads the whole body of a request whose body is small enough to be sent more than once, or
    /// returns nil (a large or chunked body streams, once).
    public static func bufferedBody(of request: Request, maxBodyBytes: Int) async throws(ProxyError) -> ByteBuffer? {
        let length = request.headers[.contentLength].flatMap { Int($0) }
        if let length, length > maxBodyBytes { throw .bodyTooLarge(maxBodyBytes) }
        if length == nil && request.headers[.transferEncoding] != nil { return nil }
        guard let length, length > 0 else { return ByteBuffer() }
        guard length <= Self.bufferedBodyLimit else { return nil }
        var request = request
        do {
            return try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            throw .bodyTooLarge(maxBodyBytes)
        }
    }

    public init(client: HTTPClient) {
        self.client = client
    }

    /// Forwards `request` to `upstream` (e.g. `http://127.0.0.1:9000`) at `path` (with query), with at
    /// most `maxBodyBytes` of request body. Returns the upstream's response with a streamed body.
    /// `removingHeaders` (lower-case names) are not passed on. `body`, when given, is sent instead of reading the request's body (a body read earlier, so a
    /// request can be sent twice).
    public func forward(
        _ request: Request,
        upstream: String,
        path: String,
        maxBodyBytes: Int,
        timeout: Duration,
        extraHeaders: [(String, String)] = [],
        removingHeaders: Set<String> = [],
        body preloaded: ByteBuffer? = nil
    ) async throws(ProxyError) -> Response {
        let length = request.headers[.contentLength].flatMap { Int($0) }
        if let length, length > maxBodyBytes { throw .bodyTooLarge(maxBodyBytes) }
        var outbound = HTTPClientRequest(url: upstream + path)
        outbound.method = NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue)
        for (name, value) in HopByHopHeaders.endToEnd(request.headers)
        where !removingHeaders.contains(name.lowercased()) {
            outbound.headers.add(name: name, value: value)
        }
        for (name, value) in extraHeaders { outbound.headers.replaceOrAdd(name: name, value: value) }
        let hasBody = length.map { $0 > 0 } ?? (request.headers[.transferEncoding] != nil)
        // The request body must be read by exactly one consumer at a time: once the response is
        // returned, the server drains whatever is left of it. Small bodies (every sync and Hrana
        // request) are read whole first; larger ones stream, and the response waits until the
        // upload finished.
        var upload: UploadCompletion?
        if let preloaded {
            outbound.body = .bytes(preloaded)
        } else if let length, hasBody, length <= Self.bufferedBodyLimit {
            var request = request
            do {
                outbound.body = .bytes(try await request.collectBody(upTo: maxBodyBytes))
            } catch {
                throw .bodyTooLarge(maxBodyBytes)
            }
        } else if hasBody {
            let completion = UploadCompletion()
            upload = completion
            let limited = LimitedBody(base: request.body, limit: maxBodyBytes, completion: completion)
            outbound.body = .stream(limited, length: length.map { .known(Int64($0)) } ?? .unknown)
        }
        let response: HTTPClientResponse
        do {
            response = try await self.client.execute(
                outbound,
                deadline: .now()
                    + .nanoseconds(
                        timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
                    )
            )
        } catch _ where upload?.exceededLimit == true {
            // The client may wrap the body's error; the upload itself records why it stopped.
            throw .bodyTooLarge(maxBodyBytes)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw .timeout("upstream did not answer within \(timeout)")
        } catch let error as HTTPClientError where error == .remoteConnectionClosed || error == .connectTimeout {
            throw .unreachable("upstream closed the connection: \(error)")
        } catch {
            throw .unreachable("upstream request failed: \(error)")
        }
        if let upload, await !upload.wait(timeout: timeout) {
            throw .failed("upstream answered before the request body was sent")
        }
        var fields = HTTPFields()
        for (name, value) in HopByHopHeaders.endToEnd(response.headers) {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
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

/// A request body that fails once more than `limit` bytes have streamed through, and reports when
/// it has been read to its end (or failed).
struct LimitedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    struct TooLarge: Error {}

    let base: RequestBody
    let limit: Int
    let completion: UploadCompletion

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let limit: Int
        let completion: UploadCompletion
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            do {
                guard let buffer = try await self.base.next() else {
                    self.completion.finish()
                    return nil
                }
                self.seen += buffer.readableBytes
                if self.seen > self.limit {
                    self.completion.exceedLimit()
                    throw TooLarge()
                }
                return buffer
            } catch {
                self.completion.finish()
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator(), limit: self.limit, completion: self.completion)
    }
}

/// Signals that a streamed upload was read to its end, and whether it hit the size limit.
final class UploadCompletion: Sendable {
    private let state = Mutex<(finished: Bool, waiter: CheckedContinuation<Bool, Never>?)>((false, nil))
    private let exceeded = Atomic<Bool>(false)

    /// True when the upload stopped because the body was larger than allowed.
    var exceededLimit: Bool { self.exceeded.load(ordering: .relaxed) }

    func exceedLimit() { self.exceeded.store(true, ordering: .relaxed) }

    func finish() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: true)
    }

    /// Waits until `finish()`; false after `timeout`.
    func wait(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let done = self.state.withLock { state -> Bool in
                        if state.finished { return true }
                        state.waiter = continuation
                        return false
                    }
                    if done { continuation.resume(returning: true) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let result = await group.next() ?? false
            if !result { self.finish() }
            group.cancelAll()
            return result
        }
    }
}
