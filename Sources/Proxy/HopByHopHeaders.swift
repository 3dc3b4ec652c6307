import Foundation
import HTTPTypes

/// Headers that belong to one connection and must not be forwarded (RFC 9110 §7.6.1), plus the ones
/// the forwarding client sets itself.
enum HopByHopHeaders {
    static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    ]

    /// The end-to-end headers of `fields` as (name, value) pairs.
    static func endToEnd(_ fields: HTTPFields) -> [(String, String)] {
        self.endToEnd(fields.map { ($0.name.rawName, $0.value) })
    }

    /// The end-to-end headers among `headers`: neither hop-by-hop nor named by a `Connection` header.
    static func endToEnd(_ headers: some Sequence<(name: String, value: String)>) -> [(String, String)] {
        var listed = Set<String>()
        for (name, value) in headers where name.lowercased() == "connection" {
            for token in value.split(separator: ",") {
                listed.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return headers.compactMap { name, value in
            let lower = name.lowercased()
            return self.names.contains(lower) || listed.contains(lower) ? nil : (name, value)
        }
    }
}
