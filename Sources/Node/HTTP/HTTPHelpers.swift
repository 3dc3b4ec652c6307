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

    /// `2026-12-02T09:12:48.463Z` (UTC, milliseconds), formatted by hand: a list of 100,000
    /// namespaces formats 300,000 of these, and a Foundation formatter per call dominated it.
    static func iso8601(_ milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds.quotientAndRemainder(dividingBy: 1000).quotient)
        var fraction = Int(milliseconds % 1000)
        if fraction < 0 {
            fraction += 1000
            seconds -= 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(fraction), 3))Z"
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
