import Foundation
import HTTPTypes
import NIOHTTP1

/// Headers that belong to one connection and must not be forwarded (RFC 9110 §7.6.1), plus the ones
/// the forwarding client sets itself.
enum HopByHopHeaders {
    static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    ]

    /// The end-to-end headers of `fields` as (name, value) pairs.
    static func endToEnd(_ fields: HTTPFields) -> [(String, String)] {
        let listed = self.listed(fields.lazy.filter { $0.name == .connection }.map(\.value))
        return fields.compactMap { field in
            let name = field.name.canonicalName
            return self.names.contains(name) || listed.contains(name) ? nil : (field.name.rawName, field.value)
        }
    }

    /// The end-to-end headers among `headers` (an upstream's response): neither hop-by-hop nor named
    /// by its `Connection` header.
    static func endToEnd(_ headers: HTTPHeaders) -> [(String, String)] {
        let listed = self.listed(headers[canonicalForm: "connection"].map(String.init))
        return headers.compactMap { name, value in
            let lower = name.lowercased()
            return self.names.contains(lower) || listed.contains(lower) ? nil : (name, value)
        }
    }

    /// The header names a `Connection` header lists (lower-cased); usually none.
    private static func listed(_ values: some Sequence<String>) -> Set<String> {
        var listed = Set<String>()
        for value in values {
            for token in value.split(separator: ",") {
                listed.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return listed
    }
}
