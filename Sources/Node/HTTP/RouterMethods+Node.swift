import HTTPTypes
import Hummingbird

extension RouterMethods where Context == NodeRequestContext {
    /// Routes `path` to `handler` for `methods`; the other usual methods answer 405.
    @discardableResult
    func on(
        _ path: RouterPath,
        methods: [HTTPRequest.Method],
        use handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) -> Self {
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] where !methods.contains(method) {
            self.on(path, method: method) { request, _ -> Response in
                throw NodeError(
                    .methodNotAllowed,
                    "\(request.method) is not allowed on \(request.uri.path)",
                    status: 405
                )
            }
        }
        for method in methods { self.on(path, method: method, use: handler) }
        return self
    }
}
