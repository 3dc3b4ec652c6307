import Hummingbird

/// Refuses new requests with 503 once shutdown has begun (the listener still drains what it took).
struct AcceptingMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    let lifecycle: NodeLifecycle

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard self.lifecycle.isAccepting else {
            throw NodeError(.shuttingDown, "the node is shutting down", status: 503, retryAfter: 1)
        }
        return try await next(request, context)
    }
}
