import Hummingbird

/// Marks every request on the peer listener as passed on by another member.
struct ForwardedMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.forwarded = true
        return try await next(request, context)
    }
}
