import Hummingbird

/// The outermost middleware of every listener: turns what the routes throw into the node's JSON
/// errors (a `NodeError` as it is; Hummingbird's own "no route" as a `NOT_FOUND`) and counts every
/// answer by listener and status for `turso_http_requests_total`.
struct RequestOutcomeMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    let listener: String
    let metrics: NodeMetrics

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as NodeError {
            response = HTTPHelpers.error(error)
        } catch let error as HTTPError where error.status == .notFound {
            response = HTTPHelpers.error(.notFound("no route for \(request.method) \(request.uri.path)"))
        } catch let error as HTTPError {
            response = HTTPHelpers.error(
                NodeError(.badRequest, error.body ?? "\(error.status)", status: error.status.code)
            )
        } catch {
            response = HTTPHelpers.error(NodeError(.io, "internal error: \(error)", status: 500))
        }
        self.metrics.countRequest(listener: self.listener, status: response.status.code)
        return response
    }
}
