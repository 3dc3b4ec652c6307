import AsyncHTTPClient
import Foundation
import MembershipTransport
import NIOCore
import NIOHTTP1
import Proxy
import Synchronization

/// Calls other members' peer listeners: pooled HTTP/1.1 connections over mutual TLS (plain HTTP
/// only in insecure development mode). A certificate reload replaces the connection pool.
final class PeerClient: Sendable {
    private let tls: TLSMaterial?
    private let current: Mutex<(generation: Int, client: HTTPClient)>

    init(tls: TLSMaterial?) {
        self.tls = tls
        let configuration = tls?.clientConfiguration
        self.current = Mutex(
            (configuration?.generation ?? 0, ReverseProxy.makeClient(tls: configuration?.configuration))
        )
    }

    var scheme: String { self.tls == nil ? "http" : "https" }

    func baseURL(_ peerAddress: String) -> String { "\(self.scheme)://\(peerAddress)" }

    /// The pooled client, rebuilt when the TLS material was reloaded.
    var client: HTTPClient {
        guard let tls else { return self.current.withLock { $0.client } }
        let (configuration, generation) = tls.clientConfiguration
        let retired = self.current.withLock { current -> HTTPClient? in
            guard current.generation != generation else { return nil }
            let old = current.client
            current = (generation, ReverseProxy.makeClient(tls: configuration))
            return old
        }
        if let retired {
            Task {
                // Requests on the old pool get time to finish.
                try? await Task.sleep(for: .seconds(60))
                try? await retired.shutdown()
            }
        }
        return self.current.withLock { $0.client }
    }

    var proxy: ReverseProxy { ReverseProxy(client: self.client) }

    func shutdown() async { try? await self.current.withLock { $0.client }.shutdown() }

    /// A request in the peer protocol (its version header set) to `path` on the member at
    /// `peerAddress`.
    func request(_ method: HTTPMethod, _ peerAddress: String, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: self.baseURL(peerAddress) + path)
        request.method = method
        request.headers.add(name: PeerProtocol.header.rawName, value: String(PeerProtocol.version))
        return request
    }

    /// A JSON call in the peer protocol: `body` encoded, the answer decoded as `Answer` when the member
    /// answered 200 (nil otherwise). Throws `NodeError` with code `peerFailed` when the member cannot
    /// be reached.
    func call<Answer: Decodable>(
        _ method: HTTPMethod,
        _ peerAddress: String,
        _ path: String,
        body: (any Encodable)? = nil,
        headers: [(String, String)] = [],
        timeout: Duration = .seconds(10),
        answer: Answer.Type
    ) async throws(NodeError) -> (status: Int, answer: Answer?) {
        var request = self.request(method, peerAddress, path)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body, let data = try? JSONEncoder().encode(body) {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        do {
            let response = try await self.client.execute(request, timeout: timeout.timeAmount)
            let buffer = try await response.body.collect(upTo: 64 << 20)
            guard response.status == .ok else { return (Int(response.status.code), nil) }
            return (Int(response.status.code), try? JSONDecoder().decode(Answer.self, from: buffer))
        } catch {
            throw NodeError(.peerFailed, "member at \(peerAddress) did not answer \(path): \(error)", status: 503)
        }
    }

    /// Sends `bytes` (binary) with `headers` and reads the member's JSON answer whatever its status
    /// (nil when it is not an `Answer`). Throws `NodeError` with code `peerFailed` when the member
    /// cannot be reached.
    func send<Answer: Decodable>(
        _ method: HTTPMethod,
        _ peerAddress: String,
        _ path: String,
        bytes: [UInt8]? = nil,
        headers: [(String, String)],
        timeout: Duration,
        answer: Answer.Type
    ) async throws(NodeError) -> (status: Int, answer: Answer?) {
        var request = self.request(method, peerAddress, path)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let bytes {
            request.headers.add(name: "content-type", value: "application/octet-stream")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        do {
            let response = try await self.client.execute(request, timeout: timeout.timeAmount)
            let buffer = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), try? JSONDecoder().decode(Answer.self, from: buffer))
        } catch {
            throw NodeError(.peerFailed, "member at \(peerAddress) did not answer \(path): \(error)", status: 503)
        }
    }

    /// Reads `path` whole (at most `limit` bytes); nil unless the member answered 200.
    func fetch(_ peerAddress: String, _ path: String, limit: Int = 80 << 20) async throws(NodeError) -> [UInt8]? {
        let request = self.request(.GET, peerAddress, path)
        do {
            let response = try await self.client.execute(request, timeout: .seconds(600))
            let buffer = try await response.body.collect(upTo: limit)
            return response.status == .ok ? Array(buffer.readableBytesView) : nil
        } catch {
            throw NodeError(.peerFailed, "member at \(peerAddress) did not answer \(path): \(error)", status: 503)
        }
    }

    /// Streams `path` into `file` (appending). Returns the bytes written and the
    /// `x-turso-file-size` the member reported.
    func download(
        _ peerAddress: String,
        _ path: String,
        into file: FileHandle,
        timeout: Duration = .seconds(600)
    ) async throws(NodeError) -> (written: Int, size: Int?, historyBase: String?) {
        let request = self.request(.GET, peerAddress, path)
        do {
            let response = try await self.client.execute(request, timeout: timeout.timeAmount)
            guard response.status == .ok else {
                throw NodeError(
                    .peerFailed,
                    "member at \(peerAddress) answered \(response.status) to \(path)",
                    status: 503
                )
            }
            let size = response.headers.first(name: ClusterHeaders.fileSize.rawName).flatMap(Int.init)
            let historyBase = response.headers.first(name: ClusterHeaders.historyBase.rawName)
            var written = 0
            for try await chunk in response.body {
                try await BlockingIO.run { () throws(NodeError) in
                    do { try file.write(contentsOf: chunk.readableBytesView) } catch { throw NodeError.io("\(error)") }
                }
                written += chunk.readableBytes
            }
            return (written, size, historyBase)
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError(.peerFailed, "cannot copy \(path) from \(peerAddress): \(error)", status: 503)
        }
    }
}
