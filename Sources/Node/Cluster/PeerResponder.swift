import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The peer listener (mutual TLS): requests other members forward (`/<namespace>/…` data requests,
/// `/_peer/admin/…` admin requests) and the cluster's own calls under `/_peer/v1/…` (namespace
/// lists, claims, handoff copies and commits).
struct PeerResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let cluster: Cluster
    let data: DataResponder
    let admin: AdminResponder

    func respond(to request: Request, context: Context) async throws -> Response {
        let target = request.uri.description
        if target.hasPrefix("/_peer/admin/") {
            let path = String(target.dropFirst("/_peer/admin".count))
            return await HTTPHelpers.respond(listener: "peer", metrics: self.cluster.metrics) {
                () async throws(NodeError) in
                try await self.admin.handle(request, target: path, forwarded: true)
            }
        }
        if target.hasPrefix("/_peer/") {
            return await HTTPHelpers.respond(listener: "peer", metrics: self.cluster.metrics) {
                () async throws(NodeError) in
                try await self.internalCall(request, target: target)
            }
        }
        return await HTTPHelpers.respond(listener: "peer", metrics: self.cluster.metrics) {
            () async throws(NodeError) in
            try await self.data.handle(
                request,
                forwarded: true,
                handedOver: request.headers[ClusterHeaders.handedOver] != nil
            )
        }
    }

    private func internalCall(_ request: Request, target: String) async throws(NodeError) -> Response {
        let path = String(target.prefix { $0 != "?" })
        let query = Self.query(target)
        let parts = path.split(separator: "/").map(String.init)
        // ["_peer", "v1", …]
        guard parts.count >= 3, parts[1] == "v1" else { throw .notFound("no peer route \(path)") }
        let claimer = request.headers[ClusterHeaders.node] ?? ""
        switch (request.method, Array(parts[2...])) {
        case (.get, ["status"]):
            return HTTPHelpers.json(
                .ok,
                [
                    "id": self.cluster.selfID, "namespaces": self.cluster.service.registry.count,
                    "running": await self.cluster.service.supervisor.runningCount,
                ]
            )
        case (.get, ["namespaces"]):
            var items: [[String: Any]] = []
            for record in self.cluster.service.registry.all() where self.cluster.holds(record.name) {
                items.append(await self.admin.json(record))
            }
            return HTTPHelpers.json(.ok, ["namespaces": items])
        case (.get, let rest) where rest.count == 3 && rest[0] == "namespaces" && rest[2] == "held":
            let name = try Self.name(rest[1])
            return HTTPHelpers.json(.ok, ["held": self.cluster.holds(name)])
        case (.post, let rest) where rest.count == 3 && rest[0] == "namespaces" && rest[2] == "claim":
            let name = try Self.name(rest[1])
            return HTTPHelpers.json(.ok, await self.cluster.answerClaim(name, claimer: claimer))
        case (.post, let rest) where rest.count == 3 && rest[0] == "namespaces" && rest[2] == "precopy":
            let name = try Self.name(rest[1])
            let body = try await Self.jsonBody(request)
            guard let from = body["from"] as? String else { throw .badRequest("precopy needs from") }
            let copied = try await self.cluster.precopy(name, from: from)
            return HTTPHelpers.json(.ok, ["copied": copied])
        case (.post, let rest) where rest.count == 3 && rest[0] == "namespaces" && rest[2] == "commit":
            let name = try Self.name(rest[1])
            let body = try await Self.jsonBody(request)
            guard let from = body["from"] as? String else { throw .badRequest("commit needs from") }
            try await self.cluster.commit(name, from: from, body: body)
            return HTTPHelpers.json(.ok, ["held": true])
        case (.get, let rest) where rest.count == 4 && rest[0] == "namespaces" && rest[2] == "files":
            let name = try Self.name(rest[1])
            guard let kind = NamespaceFiles.Kind(rawValue: rest[3]) else { throw .notFound("no file \(rest[3])") }
            guard self.cluster.service.registry.record(name) != nil else {
                throw .notFound("namespace \(name) is not held here")
            }
            let text = query["offset"] ?? "0"
            guard let offset = Int(text), offset >= 0 else {
                throw .badRequest("offset=\(text) is not an integer between 0 and \(Int.max)")
            }
            return try Self.file(self.cluster.files.livePath(name, kind), offset: offset)
        default:
            throw .notFound("no peer route \(request.method) \(path)")
        }
    }

    static func name(_ text: String) throws(NodeError) -> String {
        guard NamespaceName.isValid(text) else { throw .invalidName(text) }
        return text
    }

    static func query(_ target: String) -> [String: String] {
        guard let mark = target.firstIndex(of: "?") else { return [:] }
        var result: [String: String] = [:]
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }

    static func jsonBody(_ request: Request) async throws(NodeError) -> [String: Any] {
        var request = request
        guard let buffer = try? await request.collectBody(upTo: 1 << 20),
            let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        else { throw .badRequest("body must be a JSON object") }
        return object
    }

    /// Streams `path` from `offset` up to its size when the request arrived (a missing file is empty).
    static func file(_ path: String, offset: Int) throws(NodeError) -> Response {
        let size = NamespaceFiles.size(path)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[ClusterHeaders.fileSize] = String(size)
        let length = max(0, size - offset)
        guard length > 0, let file = StreamedFile(path: path, removeWhenClosed: false) else {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer()))
        }
        return Response(status: .ok, headers: headers, body: file.body(offset: offset, length: length))
    }
}
