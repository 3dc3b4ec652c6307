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
        var listed = Set<String>()
        for field in fields where field.name.canonicalName == "connection" {
            for token in field.value.split(separator: ",") {
                listed.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return fields.compactMap { field in
            let name = field.name.canonicalName
            return self.names.contains(name) || listed.contains(name) ? nil : (field.name.rawName, field.value)
        }
    }
}
