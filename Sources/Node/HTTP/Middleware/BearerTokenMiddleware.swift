import Hummingbird
import ServerSupport

/// Requires `Authorization: Bearer <token>`, compared in constant time. An empty token disables it
/// (the node logs a warning at start).
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    let token: String

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard !self.token.isEmpty else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.count > 7,
            header.prefix(7).lowercased() == "bearer ",
            constantTimeEquals(String(header.dropFirst(7)), self.token)
        else { throw NodeError.unauthorized() }
        return try await next(request, context)
    }
}
