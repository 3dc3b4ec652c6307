import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Membership
import NIOCore
import Proxy
import Synchronization

/// The data port: `/<namespace>/<rest>` is proxied to the namespace's backend with the prefix
/// stripped, after the bearer token and the name are checked.
struct DataRoutes: Sendable {
    let service: NamespaceService
    let cluster: Cluster
    let proxy: ReverseProxy
    let lifecycle: NodeLifecycle
    let logger: Logger

    /// Every method under `/<namespace>/`, once the node accepts requests and the token matches.
    func register(on router: some RouterMethods<NodeRequestContext>) {
        let group = router.group()
            .add(middleware: AcceptingMiddleware(lifecycle: self.lifecycle))
            .add(middleware: BearerTokenMiddleware(token: self.service.configuration.authToken))
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch, .head, .options] {
            group.on("/**", method: method) { request, _ in try await self.handle(request) }
        }
    }

    /// Splits a request target into the namespace segment and the rest (path and query).
    static func route(_ target: String) -> (namespace: Substring, rest: String)? {
        guard target.hasPrefix("/") else { return nil }
        let afterSlash = target.dropFirst()
        let namespace = afterSlash.prefix { $0 != "/" && $0 != "?" }
        var rest = String(afterSlash.dropFirst(namespace.count))
        if rest.isEmpty || rest.hasPrefix("?") { rest = "/" + rest }
        return (namespace, rest)
    }

    func handle(_ request: Request, forwarded: Bool = false) async throws(NodeError) -> Response {
        guard let (segment, rest) = Self.route(request.uri.description), !segment.isEmpty else {
            throw .notFound("no namespace in the path; use /<namespace>/...")
        }
        guard NamespaceName.isValid(segment) else { throw .invalidName(segment) }
        let name = String(segment)
        // A request body can be read once: after a forward it is replayed from this buffer, and a
        // streamed body (too large to buffer) is not retried.
        var body: ByteBuffer?
        var bodyRead = false
        attempts: for _ in 0..<3 {
            switch try await self.cluster.resolve(name, forwarded: forwarded) {
            case .local:
                return try await self.serveLocally(request, name: name, rest: rest, body: body)
            case .absent:
                try await self.cluster.locks.withLock(name) { () async throws(NodeError) in
                    _ = try await self.service.recordForDataRequest(name)
                }
            case .forward(let member):
                if !bodyRead {
                    do {
                        body = try await ReverseProxy.bufferedBody(
                            of: request,
                            maxBodyBytes: self.service.configuration.maxBodyBytes
                        )
                    } catch {
                        throw NodeError(.payloadTooLarge, error.message, status: 413)
                    }
                    bodyRead = true
                } else if body == nil {
                    break attempts
                }
                do {
                    return try await self.cluster.forward(
                        request,
                        path: request.uri.description,
                        to: member,
                        body: body,
                        maxBodyBytes: self.service.configuration.maxBodyBytes,
                        timeout: self.service.configuration.upstreamTimeout
                    )
                } catch  where error.code == .misdirected && error.owner == self.cluster.selfID {
                    await self.cluster.awaitDirectory(name, notOwnedBy: member.id.rawValue)
                    if body == nil { break attempts }
                }
            }
        }
        throw NodeError.ownerUnavailable("namespace \(name) is moving between members; retry shortly", owner: nil)
    }

    /// Proxies to this node's backend for `name` (already admitted to the gate).
    private func serveLocally(
        _ request: Request,
        name: String,
        rest: String,
        body: ByteBuffer?
    ) async throws(NodeError) -> Response {
        let cluster = self.cluster
        let port: Int
        do {
            // Registered already (this node holds it); creation happens only under the namespace's
            // lock. The supervisor refuses a namespace archived since.
            try self.service.checkNotFenced(name)
            port = try await self.service.supervisor.acquire(name)
        } catch {
            cluster.exit(name)
            throw error
        }
        let lease = BackendLease(name: name, supervisor: self.service.supervisor) { cluster.exit(name) }
        self.service.registry.touch(name, now: NamespaceService.nowMilliseconds())
        let started = ContinuousClock.now
        let upstream: Response
        do {
            upstream = try await self.proxy.forward(
                request,
                upstream: "http://127.0.0.1:\(port)",
                path: rest,
                maxBodyBytes: self.service.configuration.maxBodyBytes,
                timeout: self.service.configuration.upstreamTimeout,
                extraHeaders: self.service.supervisor.backendHeaders,
                removingHeaders: ClusterHeaders.internalNames,
                body: body
            )
        } catch {
            lease.release()
            self.logger.warning(
                "upstream error",
                metadata: ["namespace": "\(name)", "path": "\(rest.prefix { $0 != "?" })", "error": "\(error.message)"]
            )
            throw NodeError(
                error.code == .bodyTooLarge ? .payloadTooLarge : .backendFailed,
                error.code == .bodyTooLarge ? error.message : "backend for namespace \(name) failed: \(error.message)",
                status: error.status,
                retryAfter: error.status == 502 ? 1 : nil
            )
        }
        self.service.metrics.proxyLatency.record(ContinuousClock.now - started)
        var response = upstream
        let upstreamBody = upstream.body
        response.body = ResponseBody(contentLength: upstreamBody.contentLength) { writer in
            defer { lease.release() }
            try await upstreamBody.write(writer)
        }
        return response
    }
}

/// Holds a backend for a request until its response body is written (or dropped).
final class BackendLease: Sendable {
    private let name: String
    private let supervisor: Supervisor
    private let onRelease: @Sendable () -> Void
    private let released = Atomic<Bool>(false)

    init(name: String, supervisor: Supervisor, onRelease: @escaping @Sendable () -> Void = {}) {
        self.name = name
        self.supervisor = supervisor
        self.onRelease = onRelease
    }

    func release() {
        guard !self.released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.onRelease()
        let (supervisor, name) = (self.supervisor, self.name)
        Task { await supervisor.release(name) }
    }

    deinit {
        if !self.released.load(ordering: .relaxed) {
            self.onRelease()
            let (supervisor, name) = (self.supervisor, self.name)
            Task { await supervisor.release(name) }
        }
    }
}
