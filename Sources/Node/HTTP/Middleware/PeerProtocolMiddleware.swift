import Hummingbird

/// Refuses, clearly, a request from a member that speaks a peer protocol version this build cannot
/// (see `PeerProtocol`), instead of misreading its messages.
struct PeerProtocolMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let text = request.headers[PeerProtocol.header] ?? "1"
        guard let version = Int(text), PeerProtocol.supported.contains(version) else {
            throw NodeError(
                .peerProtocol,
                "the calling member speaks peer protocol version \(text); this node speaks versions \(PeerProtocol.supported.lowerBound)-\(PeerProtocol.supported.upperBound): upgrade the older member",
                status: 400
            )
        }
        return try await next(request, context)
    }
}
