import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Response builders and request parsing shared by the data and admin listeners.
enum HTTPHelpers {
    static func json(_ status: HTTPResponse.Status, _ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `{"error":{"message","code"}}` with the error's status (and `Retry-After` when it has one).
    static func error(_ error: NodeError) -> Response {
        var response = self.json(
            HTTPResponse.Status(code: error.status),
            ["error": ["message": error.message, "code": error.code.description]]
        )
        if let retryAfter = error.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        if error.status == 401 { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    /// Checks `Authorization: Bearer <token>` in constant time. An empty `token` disables auth.
    static func authorize(_ request: Request, token: String) throws(NodeError) {
        guard !token.isEmpty else { return }
        guard let header = request.headers[.authorization], header.count > 7,
            header.prefix(7).lowercased() == "bearer "
        else { throw .unauthorized() }
        guard constantTimeEquals(String(header.dropFirst(7)), token) else { throw .unauthorized() }
    }

    /// Compares two secrets in time that depends only on their lengths.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference: UInt8 = x.count == y.count ? 0 : 1
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }

    static func iso8601(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }
}
