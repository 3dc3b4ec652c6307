import Hummingbird
import Logging

/// Logs every answered request at debug level (`TURSO_LOG_LEVEL=debug`): listener, method, path
/// without the query, status and duration. Tokens and bodies are never logged.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    let listener: String
    let logger: Logger

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard self.logger.logLevel <= .debug else { return try await next(request, context) }
        let started = ContinuousClock.now
        let response = try await next(request, context)
        self.logger.debug(
            "request answered",
            metadata: [
                "http.listener": "\(self.listener)", "http.method": "\(request.method)",
                "http.path": "\(request.uri.path)", "http.status": "\(response.status.code)",
                "http.duration_ms": "\((ContinuousClock.now - started).milliseconds)",
            ]
        )
        return response
    }
}
