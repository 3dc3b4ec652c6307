import Directory
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Membership
import NIOCore

/// The admin port: namespace lifecycle (`/v1/namespaces…`), cluster membership, `/metrics`, and the
/// token-free probes `/healthz` and `/readyz`. The same routes serve admin requests another member
/// forwarded (under `/_peer/admin` on the peer listener, `context.forwarded` set).
struct AdminRoutes: Sendable {
    let service: NamespaceService
    let cluster: Cluster
    let lifecycle: NodeLifecycle
    let logger: Logger

    /// The probes, then every authenticated route.
    func register(on router: some RouterMethods<NodeRequestContext>) {
        router.on("/healthz", methods: [.get]) { _, _ in HTTPHelpers.json(.ok, StatusBody(status: "ok")) }
        router.on("/readyz", methods: [.get]) { _, _ in
            guard self.lifecycle.isAccepting else {
                throw NodeError(.shuttingDown, "the node is shutting down", status: 503)
            }
            guard self.cluster.isReady else {
                throw NodeError(.ownerUnavailable, "the node has not joined the cluster yet", status: 503)
            }
            if let failure = self.cluster.log?.status.failure {
                throw NodeError(.stateUnreadable, "the cluster log failed: \(failure)", status: 503)
            }
            return HTTPHelpers.json(.ok, StatusBody(status: "ready"))
        }
        let authenticated = router.group()
            .add(middleware: BearerTokenMiddleware(token: self.service.configuration.adminToken))
        authenticated.on("/metrics", methods: [.get]) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            self.cluster.publishMemberMetrics()
            let text = self.service.metrics.render(registered: self.service.registry.count)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        authenticated.on("/v1/cluster/members", methods: [.get]) { _, _ in await self.members() }
        authenticated.on("/v1/cluster/members/:id/remove", methods: [.post]) { _, context in
            try await self.remove(try context.parameters.require("id"))
        }
        authenticated.on("/v1/cluster/leave", methods: [.post]) { _, _ in
            self.logger.info("leave requested through the admin API")
            self.lifecycle.requestShutdown()
            return HTTPHelpers.json(.accepted, StatusBody(status: "leaving", id: self.cluster.selfID))
        }
        authenticated.on("/v1/namespaces", methods: [.get]) { request, _ in
            try await self.list(page: try Self.page(request.uri.queryParameters))
        }
        authenticated.on("/v1/namespaces/:name", methods: [.get, .delete]) { request, context in
            try await self.namespace(request, context: context, action: "")
        }
        for action in ["create", "lock", "unlock", "ttl", "access", "restore"] {
            authenticated.on("/v1/namespaces/:name/\(action)", methods: [.post]) { request, context in
                try await self.namespace(request, context: context, action: action)
            }
        }
        authenticated.on("/v1/namespaces/:name/backup", methods: [.get]) { request, context in
            try await self.namespace(request, context: context, action: "backup")
        }
    }

    /// A namespace action: served here when this node holds the namespace, created here when it is
    /// absent (create, restore), otherwise forwarded to the member that holds or owns it.
    private func namespace(
        _ request: Request,
        context: NodeRequestContext,
        action: String
    ) async throws(NodeError) -> Response {
        let name = context.parameters.get("name") ?? ""
        guard NamespaceName.isValid(name) else { throw .invalidName(name) }
        let method = request.method
        switch try await self.cluster.resolve(name, forwarded: context.forwarded) {
        case .local where method == .delete && action.isEmpty:
            // An archive drains the namespace's requests first: the DELETE must not be one of them.
            self.cluster.exit(name)
            return try await self.perform(request, context: context, name: name, action: action)
        case .local:
            defer { self.cluster.exit(name) }
            return try await self.perform(request, context: context, name: name, action: action)
        case .absent:
            guard method == .post && (action == "create" || action == "restore") else {
                throw .notFound("namespace \(name) does not exist")
            }
            let record = try await self.cluster.locks.withLock(name) { () async throws(NodeError) in
                if action == "create" { return try await self.service.create(name) }
                let file = try await self.receive(request, name: name)
                defer { try? FileManager.default.removeItem(atPath: file) }
                return try await self.service.restore(name, file: file)
            }
            return HTTPHelpers.json(.created, await self.info(record))
        case .forward(let member):
            return try await self.forward(
                request,
                target: request.uri.description,
                to: member,
                streamed: action == "restore"
            )
        }
    }

    /// Sends an admin request to the member that holds or owns the namespace. A `streamed` body (a
    /// restore) is passed on as it arrives; others are read first so the request can be retried.
    private func forward(
        _ request: Request,
        target: String,
        to member: MemberState,
        streamed: Bool
    ) async throws(NodeError) -> Response {
        var request = request
        let limit = streamed ? NamespaceService.maxRestoreBytes : self.service.configuration.maxAdminBodyBytes
        var body: ByteBuffer?
        if !streamed {
            do {
                body = try await request.collectBody(upTo: limit)
            } catch {
                throw NodeError(.payloadTooLarge, "request body exceeds \(limit) bytes", status: 413)
            }
        }
        return try await self.cluster.forward(
            request,
            path: "/_peer/admin" + target,
            to: member,
            body: body,
            maxBodyBytes: limit,
            timeout: .seconds(600)
        )
    }

    /// Writes a restore's body (a SQLite file) to a temporary file under `_state/tmp/`; returns its path.
    private func receive(_ request: Request, name: String) async throws(NodeError) -> String {
        let directory = self.service.configuration.stateDirectory + "/tmp"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/restore-\(name)-\(UUID().uuidString).db"
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw NodeError.io("cannot create \(path)") }
        defer { try? handle.close() }
        var received = 0
        do {
            for try await chunk in request.body {
                received += chunk.readableBytes
                guard received <= NamespaceService.maxRestoreBytes else {
                    throw NodeError(
                        .payloadTooLarge,
                        "a restored database may be at most \(NamespaceService.maxRestoreBytes) bytes",
                        status: 413
                    )
                }
                try handle.write(contentsOf: chunk.readableBytesView)
            }
        } catch let error as NodeError {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw NodeError.io("cannot receive the database: \(error)")
        }
        return path
    }

    /// One namespace action on this node, which holds the namespace.
    private func perform(
        _ request: Request,
        context: NodeRequestContext,
        name: String,
        action: String
    ) async throws(NodeError) -> Response {
        let method = request.method
        switch (method, action) {
        case (.get, ""):
            return try await self.describe(name)
        case (.delete, ""):
            let folder = try await self.service.archive(name, reason: "deleted through the admin API")
            return HTTPHelpers.json(.ok, ArchivedNamespace(name: name, archived: true, archive: folder))
        case (.post, "create"):
            let record = try await self.service.create(name)
            return HTTPHelpers.json(.created, await self.info(record))
        case (.post, "restore"):
            throw NodeError(.exists, "namespace \(name) already exists; delete it before restoring", status: 409)
        case (.post, "lock"), (.post, "unlock"):
            let locked = action == "lock"
            let record = try await self.service.setLocked(name, locked)
            self.logger.info(locked ? "namespace locked" : "namespace unlocked", metadata: ["namespace": "\(name)"])
            return HTTPHelpers.json(.ok, await self.info(record))
        case (.post, "ttl"):
            let ttl = try await self.ttl(from: request)
            let record = try await self.service.setTTL(name, seconds: ttl)
            self.logger.info(
                "namespace ttl set",
                metadata: ["namespace": "\(name)", "ttl": "\(ttl.map(GoDuration.format) ?? "none")"]
            )
            return HTTPHelpers.json(.ok, await self.info(record))
        case (.post, "access"):
            let now = NamespaceService.nowMilliseconds()
            guard let record = try await self.service.registry.update(name, { $0.lastAccessAt = now }) else {
                throw .notFound("namespace \(name) does not exist")
            }
            return HTTPHelpers.json(.ok, await self.info(record))
        case (.get, "backup"):
            return try await self.backup(name, context: context)
        default:
            preconditionFailure("no admin route registers \(method) for action \(action)")
        }
    }

    /// The TTLs a namespace accepts: a millisecond to 100 years.
    static let ttlRange = 0.001...(36_500 * 86_400.0)

    /// Parses `{"ttl":"30d"}`; `null`, `""` or `"0"` clears the TTL.
    private func ttl(from request: Request) async throws(NodeError) -> Double? {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: self.service.configuration.maxAdminBodyBytes)
        } catch {
            throw NodeError(
                .payloadTooLarge,
                "request body exceeds \(self.service.configuration.maxAdminBodyBytes) bytes",
                status: 413
            )
        }
        /// `{"ttl": "30d"}`, `{"ttl": null}`: the key must be there, its value a string or null.
        struct TTLBody: Decodable {
            var ttl: String?
            var present: Bool
            enum CodingKeys: String, CodingKey { case ttl }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                self.present = container.contains(.ttl)
                self.ttl = try container.decodeIfPresent(String.self, forKey: .ttl)
            }
        }
        let body: TTLBody
        do {
            body = try JSONDecoder().decode(TTLBody.self, from: buffer)
        } catch DecodingError.typeMismatch {
            throw .badRequest("ttl must be a duration string like \"30d\"")
        } catch {
            throw .badRequest("body must be a JSON object like {\"ttl\":\"30d\"}")
        }
        guard body.present else { throw .badRequest("body must be a JSON object like {\"ttl\":\"30d\"}") }
        guard let text = body.ttl else { return nil }
        if text.isEmpty || text == "0" { return nil }
        switch GoDuration.parse(text, field: "ttl", range: Self.ttlRange) {
        case .success(let seconds): return seconds
        case .failure(let problem): throw .badRequest(problem.message)
        }
    }

    /// `GET /v1/cluster/members`: every member this node knows (just itself when not clustered), with
    /// the namespaces each holds (asked of each live member; null when it does not answer).
    private func members() async -> Response {
        let configuration = self.service.configuration
        guard self.cluster.isClustered, let peers = self.cluster.peers else {
            var member = MemberInfo(
                id: configuration.nodeID,
                dataAddress: configuration.dataAddress.description,
                adminAddress: configuration.adminAddress.description,
                zone: configuration.zone,
                state: self.lifecycle.isAccepting ? "active" : "leaving",
                liveness: "alive",
                incarnation: UInt64(self.lifecycle.startedAt),
                namespaces: self.service.registry.count,
                running: await self.service.supervisor.runningCount,
                isSelf: true
            )
            if let log = self.service.directory?.log { member.describeLog(log.status, replica: log.identity.replicaID) }
            return HTTPHelpers.json(.ok, MemberList(members: [member]))
        }
        let view = self.cluster.view
        // Namespace counts are informational: asked only of members gossip sees alive, briefly (a
        // member killed a moment ago is not suspected yet, and the peer client keeps trying to
        // connect until the timeout), so the list answers quickly during an incident.
        let counts = await withTaskGroup(of: (String, Int?).self) { group in
            for member in view.others where member.status == .alive {
                group.addTask {
                    let answer = try? await peers.call(
                        .GET,
                        member.metadata.peerAddress,
                        "/_peer/v1/status",
                        timeout: .seconds(1),
                        answer: PeerStatus.self
                    )
                    return (member.id.rawValue, answer?.answer?.namespaces)
                }
            }
            var counts: [String: Int] = [:]
            for await (id, count) in group { if let count { counts[id] = count } }
            return counts
        }
        let log = self.cluster.log
        let status = log?.status  // once for every member
        let items = view.members.map { member in
            let isSelf = member.id.rawValue == self.cluster.selfID
            var info = MemberInfo(
                id: member.id.rawValue,
                gossipAddress: member.metadata.gossipAddress,
                peerAddress: member.metadata.peerAddress,
                dataAddress: member.metadata.dataAddress,
                zone: member.metadata.zone,
                weight: Int(member.metadata.weight),
                version: member.metadata.version,
                state: "\(member.metadata.lifecycle)",
                liveness: "\(member.status)",
                incarnation: member.incarnation.value,
                namespaces: isSelf ? self.service.registry.count : counts[member.id.rawValue],
                isSelf: isSelf
            )
            info.storageId = member.metadata.storageID.isEmpty ? nil : member.metadata.storageID
            info.clusterId = member.metadata.clusterID.isEmpty ? nil : member.metadata.clusterID
            if let log, let status, !member.metadata.storageID.isEmpty, member.metadata.clusterID == log.clusterID {
                info.describeLog(status, replica: ClusterLog.replica(member.metadata.storageID), isSelf: isSelf)
            }
            return info
        }
        return HTTPHelpers.json(.ok, MemberList(members: items))
    }

    /// `POST /v1/cluster/members/:id/remove`: takes a member that is not alive out of the cluster
    /// for good, through the log: its record is removed (its storage id is never trusted again; the
    /// node id may return only with a new data directory) and the leader then takes its replica out
    /// of the voters. Gossip announces it `left`, so nothing waits for it any more; its namespaces
    /// count as absent (restore them from backups).
    private func remove(_ id: String) async throws(NodeError) -> Response {
        guard let membership = self.cluster.membership else {
            throw NodeError(.badRequest, "this node is not clustered", status: 409)
        }
        guard id != self.cluster.selfID else {
            throw NodeError(
                .badRequest,
                "a node cannot remove itself; stop it and remove it from another member",
                status: 409
            )
        }
        let member = self.cluster.view.member(id)
        if let member, member.status == .alive || member.status == .suspect {
            throw NodeError(
                .badRequest,
                "member \(id) is \(member.status): only a member that is down can be removed (stop it first, or let it leave)",
                status: 409
            )
        }
        guard let log = self.cluster.log else { throw NodeError.noClusterLog }
        guard let recorded = log.read({ $0.members[id] }) else { throw .notFound("no member \(id)") }
        if log.status.leader == ClusterLog.replica(recorded.storageID) {
            throw NodeError(
                .badRequest,
                "member \(id) leads the cluster log (it is reachable there): it is not down",
                status: 409
            )
        }
        let outcomes = try await log.propose([.removeMember(id: id)])
        guard outcomes == [.applied] else {
            throw NodeError(.badRequest, "member \(id) was not removed: \(outcomes)", status: 409)
        }
        if let member, member.status == .dead { _ = await membership.forget(member.id) }
        self.logger.warning(
            "member removed by an operator",
            metadata: ["membership.peer": "\(id)", "storage.id": "\(recorded.storageID)"]
        )
        return HTTPHelpers.json(.ok, RemovedMember(id: id, storageId: recorded.storageID, state: "removed"))
    }

    /// `GET /v1/namespaces`: a one-node cluster lists its registry; a clustered node lists the
    /// directory it applied (no call to any other member), describing the namespaces it holds from
    /// its own records and processes and the others from their directory entries.
    private func list(page: Page?) async throws(NodeError) -> Response {
        if self.cluster.isClustered {
            guard let directory = self.service.directory else {
                throw NodeError.noClusterLog
            }
            // One more than the page: whether a next page follows.
            let log = directory.log
            let (after, limit) = (page?.after, page.map { $0.limit + 1 })
            let entries = try await BlockingIO.run { () throws(NodeError) in try log.page(after: after, limit: limit) }
            let view = self.cluster.view
            let processes = await self.service.supervisor.processStates()
            let items = entries.map { entry -> NamespaceInfo in
                if entry.owner == self.cluster.selfID, let record = self.service.registry.record(entry.name) {
                    return self.info(record, view: view, process: processes[entry.name], entry: entry)
                }
                return NamespaceInfo(remote: entry)
            }
            return Self.listResponse(Self.paged(NamespaceList(namespaces: items), page))
        }
        let records = Self.pageOf(self.service.registry.all(), page, name: \.name)
        return Self.listResponse(Self.paged(NamespaceList(namespaces: await self.infos(records)), page))
    }

    /// The part of `sorted` (by name) a page covers: after `after`, at most limit + 1 (to know
    /// whether there is a next page), before any per-namespace work.
    static func pageOf<Item>(_ sorted: [Item], _ page: Page?, name: (Item) -> String) -> [Item] {
        guard let page else { return sorted }
        var start = 0
        if let after = page.after {
            var end = sorted.count
            while start < end {
                let middle = (start + end) / 2
                if name(sorted[middle]) <= after { start = middle + 1 } else { end = middle }
            }
        }
        return Array(sorted[start..<min(sorted.count, start + page.limit + 1)])
    }

    static func listResponse(_ list: NamespaceList) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: list.jsonBytes)))
    }

    /// `?limit=&after=` of `GET /v1/namespaces`.
    struct Page: Sendable {
        static let maximumLimit = 10_000
        var limit: Int
        var after: String?
    }

    static func page(_ query: Hummingbird.Parameters) throws(NodeError) -> Page? {
        let limitText = query["limit"].map(String.init)
        let after = query["after"].map(String.init)
        guard limitText != nil || after != nil else { return nil }
        var limit = Page.maximumLimit
        if let limitText {
            guard let value = Int(limitText), (1...Page.maximumLimit).contains(value) else {
                throw .badRequest("limit must be an integer from 1 to \(Page.maximumLimit)")
            }
            limit = value
        }
        if let after, after.utf8.count > 253 { throw .badRequest("after must be a namespace name") }
        return Page(limit: limit, after: after)
    }

    /// Cuts `list` to the page (items sorted by name) and sets `next` when more follow.
    static func paged(_ list: NamespaceList, _ page: Page?) -> NamespaceList {
        guard let page, list.namespaces.count > page.limit else { return list }
        var list = list
        list.namespaces = Array(list.namespaces.prefix(page.limit))
        list.next = list.namespaces.last?.name
        return list
    }

    private func describe(_ name: String) async throws(NodeError) -> Response {
        guard let record = self.service.registry.record(name) else {
            throw .notFound("namespace \(name) does not exist")
        }
        return HTTPHelpers.json(.ok, await self.info(record))
    }

    func info(_ record: NamespaceRecord) async -> NamespaceInfo {
        let entry = self.service.directory?.entry(record.name)
        var info = self.info(
            record,
            view: self.cluster.view,
            process: await self.service.supervisor.processStates()[record.name],
            entry: entry
        )
        info.replication = entry.map { entry in
            let owned = entry.owner == self.cluster.selfID && !entry.followers.isEmpty
            return NamespaceInfo.Replication(entry, lagBytes: owned ? self.cluster.shipper?.lag(record.name) : nil)
        }
        let files = NamespaceFiles(configuration: self.service.configuration)
        info.storage = NamespaceInfo.Storage(
            databaseBytes: NamespaceFiles.size(files.livePath(record.name, .db)),
            walBytes: NamespaceFiles.size(files.livePath(record.name, .wal)),
            historyBytes: NamespaceFiles.size(files.livePath(record.name, .history))
        )
        return info
    }

    /// The namespaces of `records` this node holds, described with one view of the cluster and one
    /// snapshot of the supervisor.
    func infos(_ records: [NamespaceRecord]) async -> [NamespaceInfo] {
        let view = self.cluster.view
        let processes = await self.service.supervisor.processStates()
        return records.filter { self.cluster.holds($0.name) }.map { record in
            self.info(record, view: view, process: processes[record.name])
        }
    }

    /// Lists call this with one view and one snapshot of the supervisor for every record (and the
    /// directory entry, when they read it already).
    func info(
        _ record: NamespaceRecord,
        view: ClusterView,
        process: Supervisor.ProcessState?,
        entry: NamespaceEntry? = nil
    ) -> NamespaceInfo {
        let entry = entry ?? self.service.directory?.entry(record.name)
        var info = NamespaceInfo(
            name: record.name,
            origin: record.origin.rawValue,
            locked: record.locked,
            ttl: record.ttlSeconds.map(GoDuration.format),
            createdAt: HTTPHelpers.iso8601(record.createdAt),
            lastAccessAt: HTTPHelpers.iso8601(record.lastAccessAt),
            expiresAt: record.expiresAt.map(HTTPHelpers.iso8601),
            owner: entry?.owner ?? view.owner(of: record.name)?.id.rawValue,
            holder: self.cluster.selfID,
            replicas: entry?.followers ?? [],
            state: "dormant",
            running: false
        )
        switch process?.state {
        case .running(let port, _):
            info.state = "running"
            info.running = true
            info.port = port
            info.pid = process?.pid.map(Int.init)
        case .starting, .queued: info.state = "starting"
        case .stopping: info.state = "stopping"
        case .backoff: info.state = "restarting"
        case nil: break
        }
        return info
    }

    private func backup(_ name: String, context: NodeRequestContext) async throws(NodeError) -> Response {
        let path = try await self.service.backup(name)
        let body = try await FileResponse.body(
            path,
            length: NamespaceFiles.size(path),
            temporary: true,
            context: context
        )
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.sqlite3"
        headers[.contentDisposition] = "attachment; filename=\"\(name).db\""
        return Response(status: .ok, headers: headers, body: body)
    }
}
