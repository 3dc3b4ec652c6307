import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Replication
import SyncServer

/// The peer listener (mutual TLS): requests other members forward (`/<namespace>/…` data requests,
/// `/_peer/admin/…` admin requests) and the cluster's own calls under `/_peer/v1/…` (namespace
/// lists, the cluster log, and the copies of moves).
struct PeerRoutes: Sendable {
    let cluster: Cluster
    let data: DataRoutes
    let admin: AdminRoutes

    func register(on router: some RouterMethods<NodeRequestContext>) {
        let peer = router.group().add(middleware: PeerProtocolMiddleware()).add(middleware: ForwardedMiddleware())
        self.admin.register(on: peer.group("/_peer/admin"))
        self.registerCalls(on: peer.group("/_peer/v1"))
        let forwarded = peer.group()
            .add(middleware: AcceptingMiddleware(lifecycle: self.data.lifecycle))
            .add(middleware: BearerTokenMiddleware(token: self.cluster.configuration.authToken))
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch, .head, .options] {
            forwarded.on("/**", method: method) { request, _ in
                try await self.data.handle(request, forwarded: true)
            }
        }
    }

    /// The cluster's own calls between members.
    private func registerCalls(on calls: some RouterMethods<NodeRequestContext>) {
        calls.on("/raft", methods: [.post]) { request, context in
            guard let log = self.cluster.log else { throw NodeError.notFound("this node runs no cluster log yet") }
            return try await RaftTransport.serve(request, log: log, sender: context.peerIdentities)
        }
        calls.on("/raft/propose", methods: [.post]) { request, _ in
            guard let log = self.cluster.log else { throw NodeError.notFound("this node runs no cluster log yet") }
            return try await RaftTransport.serveProposal(request, log: log)
        }
        calls.on("/status", methods: [.get]) { _, _ in
            HTTPHelpers.json(
                .ok,
                PeerStatus(
                    id: self.cluster.selfID,
                    namespaces: self.cluster.service.registry.count,
                    running: await self.cluster.service.supervisor.runningCount
                )
            )
        }
        self.registerReplicas(on: calls)
        calls.on("/namespaces/:name/precopy", methods: [.post]) { request, context in
            let name = try Self.name(context)
            let body = try await Self.decode(PrecopyRequest.self, from: request)
            let copied = try await self.cluster.receivePrecopy(name, from: body.from)
            return HTTPHelpers.json(.ok, PrecopyAnswer(copied: copied))
        }
        calls.on("/namespaces/:name/transfer", methods: [.post]) { request, context in
            let name = try Self.name(context)
            let body = try await Self.decode(TransferRequest.self, from: request)
            try await self.cluster.receiveTransfer(name, request: body)
            return HTTPHelpers.json(.ok, TransferAnswer(staged: true))
        }
        calls.on("/namespaces/:name/files/:kind", methods: [.get]) { request, context in
            let name = try Self.name(context)
            let kindText = context.parameters.get("kind") ?? ""
            guard let kind = NamespaceFiles.Kind(rawValue: kindText) else {
                throw NodeError.notFound("no file \(kindText)")
            }
            let text = request.uri.queryParameters.get("offset") ?? "0"
            guard let offset = Int(text), offset >= 0 else {
                throw NodeError.badRequest("offset=\(text) is not an integer between 0 and \(Int.max)")
            }
            // Held or sealed for a move: the files a target copies.
            guard self.cluster.service.registry.copy(name) != nil || self.cluster.service.registry.record(name) != nil
            else {
                throw NodeError.notFound("namespace \(name) is not held here")
            }
            // Taken before the bytes are read: a lower bound of what the copy holds.
            let base = kind == .db ? DatabaseFileDelta.base(databasePath: self.cluster.files.livePath(name, .db)) : nil
            var response = try await Self.file(
                self.cluster.files.livePath(name, kind),
                offset: offset,
                context: context
            )
            if let base { response.headers[ClusterHeaders.historyBase] = base.description }
            return response
        }
        calls.on("/namespaces/:name/delta", methods: [.get]) { request, context in
            let name = try Self.name(context)
            let text = request.uri.queryParameters.get("since") ?? ""
            guard let since = DatabaseFileDelta.Position(text) else {
                throw NodeError.badRequest("since=\(text) is not a history position (<lineage hex>:<sequence>)")
            }
            let body = try await self.cluster.databaseDelta(name, since: since)
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    /// WAL shipping to this node as a follower (`ShipmentMessages`).
    private func registerReplicas(on calls: some RouterMethods<NodeRequestContext>) {
        let receiver = self.cluster.replicas
        calls.on("/replicas/:name", methods: [.get]) { _, context in
            Self.answer(await receiver.copy(try Self.name(context)))
        }
        calls.on("/replicas/:name/append", methods: [.post]) { request, context in
            let name = try Self.name(context)
            let sender = try Self.sender(request, context)
            let expected = try ShipmentMessages.expected(request.headers)
            let bytes = try await Self.body(request, upTo: ShipmentMessages.appendReceiveLimit)
            return Self.answer(await receiver.append(name, from: sender, to: expected, bytes: bytes))
        }
        calls.on("/replicas/:name/retire", methods: [.post]) { request, context in
            let name = try Self.name(context)
            let sender = try Self.sender(request, context)
            let expected = try ShipmentMessages.expected(request.headers)
            let history = try await Self.body(request, upTo: 1 << 30)
            return Self.answer(await receiver.retire(name, from: sender, to: expected, history: history))
        }
        calls.on("/replicas/:name/install", methods: [.post]) { request, context in
            let name = try Self.name(context)
            let sender = try Self.sender(request, context)
            let expected = try ShipmentMessages.expected(request.headers)
            let sizes = (request.headers[ShipmentMessages.installSizes] ?? "").split(separator: ",").compactMap {
                Int($0)
            }
            guard sizes.count == 3 else { throw NodeError.badRequest("x-turso-install-sizes must be db,wal,history") }
            let bytes = try await Self.body(request, upTo: Self.installLimit)
            return Self.answer(
                await receiver.install(
                    name,
                    from: sender,
                    to: expected,
                    bytes: bytes,
                    sizes: (sizes[0], sizes[1], sizes[2]),
                    delta: request.headers[ShipmentMessages.installMode] == "delta"
                )
            )
        }
    }

    /// The largest full copy a follower takes in one call (it is held in memory).
    static let installLimit = 4 << 30

    /// The sender a shipment names, which must be who the connection's certificate says it is.
    private static func sender(
        _ request: Request,
        _ context: NodeRequestContext
    ) throws(NodeError)
        -> FollowerRules.Sender
    {
        let sender = try ShipmentMessages.sender(request.headers)
        if let identities = context.peerIdentities, !identities.contains(sender.node) {
            throw NodeError(
                .unauthorized,
                "a shipment from \(sender.node) arrived over a connection of \(identities.sorted())",
                status: 403
            )
        }
        return sender
    }

    private static func body(_ request: Request, upTo limit: Int) async throws(NodeError) -> [UInt8] {
        var request = request
        do {
            return Array(try await request.collectBody(upTo: limit).readableBytesView)
        } catch {
            throw NodeError(
                .payloadTooLarge,
                "the shipment is larger than \(limit) bytes or was cut short",
                status: 413
            )
        }
    }

    private static func answer(_ answer: ReplicaReceiver.Answer) -> Response {
        HTTPHelpers.json(HTTPResponse.Status(code: answer.status), answer.answer)
    }

    static func name(_ context: NodeRequestContext) throws(NodeError) -> String {
        try Self.name(context.parameters.get("name") ?? "")
    }

    static func name(_ text: String) throws(NodeError) -> String {
        guard NamespaceName.isValid(text) else { throw .invalidName(text) }
        return text
    }

    /// Decodes a peer message from a request body (at most 1 MiB).
    static func decode<Message: Decodable>(
        _ type: Message.Type,
        from request: Request
    ) async throws(NodeError)
        -> Message
    {
        var request = request
        guard let buffer = try? await request.collectBody(upTo: 1 << 20),
            let message = try? JSONDecoder().decode(Message.self, from: buffer)
        else { throw .badRequest("the body is not a valid \(Message.self)") }
        return message
    }

    /// Streams `path` from `offset` up to its size when the request arrived (a missing file is empty).
    static func file(_ path: String, offset: Int, context: NodeRequestContext) async throws(NodeError) -> Response {
        let size = NamespaceFiles.size(path)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[ClusterHeaders.fileSize] = String(size)
        let body = try await FileResponse.body(path, offset: offset, length: max(0, size - offset), context: context)
        return Response(status: .ok, headers: headers, body: body)
    }
}
