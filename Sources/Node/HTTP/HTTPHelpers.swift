import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Response builders and request parsing shared by the data and admin listeners.
enum HTTPHelpers {
    /// A JSON response (keys sorted, so answers are stable for clients and tests).
    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `{"error":{"message","code"}}` with the error's status (and `Retry-After` when it has one).
    static func error(_ error: NodeError) -> Response {
        let body = ErrorBody(error: .init(message: error.message, code: error.code.description, owner: error.owner))
        var response = self.json(error.status, body)
        if let retryAfter = error.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        if let owner = error.owner { response.headers[ClusterHeaders.owner] = owner }
        if error.statusCode == 401 { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    static func iso8601(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }
}

/// A `NodeError` thrown anywhere under Hummingbird answers with its status and JSON body, decided in
/// one place (`HTTPHelpers.error`).
extension NodeError: HTTPResponseError {
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: self.statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        HTTPHelpers.error(self)
    }
}
