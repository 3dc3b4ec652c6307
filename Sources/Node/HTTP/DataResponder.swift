import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Proxy
import Synchronization

/// The data port: `/<namespace>/<rest>` is proxied to the namespace's backend with the prefix
/// stripped, after the bearer token and the name are checked.
struct DataResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let service: NamespaceService
    let proxy: ReverseProxy
    let lifecycle: NodeLifecycle
    let logger: Logger

    func respond(to request: Request, context: Context) async throws -> Response {
        await HTTPHelpers.respond(listener: "data", metrics: self.service.metrics) { () async throws(NodeError) in
            try await self.handle(request)
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

    private func handle(_ request: Request) async throws(NodeError) -> Response {
        guard self.lifecycle.isAccepting else {
            throw NodeError(.shuttingDown, "the node is shutting down", status: 503, retryAfter: 1)
        }
        try HTTPHelpers.authorize(request, token: self.service.configuration.authToken)
        guard let (segment, rest) = Self.route(request.uri.description), !segment.isEmpty else {
            throw .notFound("no namespace in the path; use /<namespace>/...")
        }
        guard NamespaceName.isValid(segment) else { throw .invalidName(segment) }
        let name = String(segment)
        _ = try self.service.recordForDataRequest(name)
        let port = try await self.service.supervisor.acquire(name)
        let lease = BackendLease(name: name, supervisor: self.service.supervisor)
        self.service.registry.touch(name, now: NamespaceService.nowMilliseconds())
        let started = ContinuousClock.now
        let upstream: Response
        do {
            upstream = try await self.proxy.forward(
                request,
                upstream: "http://127.0.0.1:\(port)",
                path: rest,
                maxBodyBytes: self.service.configuration.maxBodyBytes,
                timeout: .seconds(Int64(self.service.configuration.upstreamTimeout))
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
        self.service.metrics.proxyLatency.observe(ContinuousClock.now - started)
        var response = upstream
        let body = upstream.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            defer { lease.release() }
            try await body.write(writer)
        }
        return response
    }
}

/// Holds a backend for a request until its response body is written (or dropped).
final class BackendLease: Sendable {
    private let name: String
    private let supervisor: Supervisor
    private let released = Atomic<Bool>(false)

    init(name: String, supervisor: Supervisor) {
        self.name = name
        self.supervisor = supervisor
    }

    func release() {
        guard !self.released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let (supervisor, name) = (self.supervisor, self.name)
        Task { await supervisor.release(name) }
    }

    deinit {
        if !self.released.load(ordering: .relaxed) {
            let (supervisor, name) = (self.supervisor, self.name)
            Task { await supervisor.release(name) }
        }
    }
}
