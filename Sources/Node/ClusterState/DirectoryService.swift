import Directory
import Foundation
import Logging
import Synchronization

/// The node's use of the cluster directory while it is a one-node cluster: it registers itself as a
/// member, imports a registry written by an older build, creates, archives and changes namespaces
/// only through the log, and keeps the registry (this node's working set, with its local access
/// times) a mirror of the directory entries it owns.
final class DirectoryService: Sendable {
    let log: DirectoryLog
    let registry: NamespaceRegistry
    let nodeID: String
    let zone: String
    let logger: Logger
    /// Creates proposed and not applied yet: counted against the namespace cap so that concurrent
    /// creates cannot overshoot it.
    private let pendingCreates = Mutex(0)
    /// The followers a namespace created here gets (the cluster sets it from its placement view;
    /// none on a one-node cluster).
    let followerPlacement = Mutex<@Sendable (String) -> [String]>({ _ in [] })

    /// Commands per log entry when importing (keeps entries well under the message size limit).
    static let importBatch = 500

    /// Whether this service keeps the registry a mirror of the directory (a one-node cluster); on a
    /// clustered node the ownership machine does, with the files.
    let mirrors: Bool

    init(
        log: DirectoryLog,
        registry: NamespaceRegistry,
        nodeID: String,
        zone: String,
        logger: Logger,
        mirrors: Bool = true
    ) {
        self.log = log
        self.registry = registry
        self.nodeID = nodeID
        self.zone = zone
        self.logger = logger
        self.mirrors = mirrors
        guard mirrors else { return }
        log.observe { [registry, nodeID, weak log] change in
            guard let log else { return }
            await Self.mirror(change.namespaces, log: log, registry: registry, nodeID: nodeID, logger: logger)
        }
    }

    /// Replays the log, makes this node an active member, imports the old registry once and brings
    /// the registry in line with the directory. Namespaces left half archived are returned, for the
    /// caller to finish.
    func start() async throws(NodeError) -> [String] {
        try await self.log.start()
        try await self.registerSelf()
        try await self.raiseFormatAlone()
        try await self.importRegistry()
        // The mirror changes only names this node owns or records; the others need no look.
        let names = Set(try self.log.owned(by: self.nodeID).map(\.name)).union(self.registry.all().map(\.name))
        await Self.mirror(names, log: self.log, registry: self.registry, nodeID: self.nodeID, logger: self.logger)
        return self.interruptedArchives()
    }

    /// Namespaces this node began archiving and did not finish (an error, or a crash).
    func interruptedArchives() -> [String] {
        do {
            return try self.log.owned(by: self.nodeID, state: .archiving).map(\.name)
        } catch {
            self.logger.error("cannot read the directory", metadata: ["error": "\(error.message)"])
            return []
        }
    }

    /// Mirrors one name again (after a failed mirror write).
    func remirror(_ name: String) async {
        guard self.mirrors else { return }
        await Self.mirror([name], log: self.log, registry: self.registry, nodeID: self.nodeID, logger: self.logger)
    }

    /// The directory entry of `name`, if it exists in any state.
    func entry(_ name: String) -> NamespaceEntry? { self.log.entry(name) }

    /// Registers `name` owned by this node. Returns false when it already exists.
    func create(
        _ name: String,
        origin: NamespaceOrigin,
        now: Int64,
        maxNamespaces: Int
    ) async throws(NodeError) -> Bool {
        let admitted = self.pendingCreates.withLock { pending in
            let count = self.log.read(\.namespaceCount)
            guard maxNamespaces <= 0 || count + pending < maxNamespaces else { return false }
            pending += 1
            return true
        }
        guard admitted else {
            throw NodeError(
                .limitReached,
                "namespace limit reached: \(maxNamespaces) namespaces are registered (TURSO_MAX_NAMESPACES)",
                status: 429
            )
        }
        defer { self.pendingCreates.withLock { $0 -= 1 } }
        // Replica sets need format 3: until every member applies it (an upgrade), none.
        let followers = self.log.read(\.format) >= 3 ? self.followerPlacement.withLock { $0 }(name) : []
        let command = DirectoryCommand.createNamespace(
            name: name,
            owner: self.nodeID,
            origin: origin == .explicit ? .explicit : .auto,
            locked: origin == .explicit,
            ttlMilliseconds: nil,
            createdAt: UInt64(max(now, 0)),
            followers: followers
        )
        switch try await self.proposeOne(command) {
        case .applied: return true
        case .refused(.namespaceExists): return false
        case .refused(let refusal): throw Self.error(refusal, name: name)
        }
    }

    func setLocked(_ name: String, _ locked: Bool) async throws(NodeError) {
        if case .refused(let refusal) = try await self.proposeOne(.setLocked(name: name, locked: locked)) {
            throw Self.error(refusal, name: name)
        }
    }

    /// A TTL in seconds as the directory keeps it: whole milliseconds, at least 1, at most the
    /// API's limit (a registry from an older build may hold anything, even infinity).
    /// The creation of a namespace a registry record describes (an import keeps its metadata and
    /// its creation time, which is its incarnation).
    static func creation(of record: NamespaceRecord, owner: String) -> DirectoryCommand {
        .createNamespace(
            name: record.name,
            owner: owner,
            origin: record.origin == .explicit ? .explicit : .auto,
            locked: record.locked,
            ttlMilliseconds: Self.milliseconds(ttl: record.ttlSeconds),
            createdAt: record.incarnation
        )
    }

    static func milliseconds(ttl seconds: Double?) -> UInt64? {
        guard let seconds, seconds.isFinite, seconds > 0 else { return nil }
        return UInt64(max((min(seconds, AdminRoutes.ttlRange.upperBound) * 1000).rounded(), 1))
    }

    func setTTL(_ name: String, seconds: Double?) async throws(NodeError) {
        let milliseconds = Self.milliseconds(ttl: seconds)
        if case .refused(let refusal) = try await self.proposeOne(.setTTL(name: name, ttlMilliseconds: milliseconds)) {
            throw Self.error(refusal, name: name)
        }
    }

    /// Marks `name` as being archived (refused to requests from then on); returns its epoch.
    func beginArchive(_ name: String) async throws(NodeError) -> UInt64 {
        guard let entry = self.entry(name), entry.owner == self.nodeID else {
            throw .notFound("namespace \(name) does not exist")
        }
        if entry.state == .archiving { return entry.epoch }
        if case .refused(let refusal) = try await self.proposeOne(.beginArchive(name: name, epoch: entry.epoch)) {
            throw Self.error(refusal, name: name)
        }
        return entry.epoch
    }

    /// The files are in the archive: the name is free (and leaves the registry through the mirror).
    func finishArchive(_ name: String, epoch: UInt64) async throws(NodeError) {
        if case .refused(let refusal) = try await self.proposeOne(.finishArchive(name: name, epoch: epoch)) {
            throw Self.error(refusal, name: name)
        }
    }

    /// Proposes new follower sets (each a compare-and-set on the entry's epoch and ISR version);
    /// returns how many applied.
    func setFollowers(_ changes: [(entry: NamespaceEntry, followers: [String])]) async throws(NodeError) -> Int {
        guard self.log.read(\.format) >= 3 else { return 0 }
        let commands = changes.map {
            DirectoryCommand.setFollowers(
                name: $0.entry.name,
                epoch: $0.entry.epoch,
                isrVersion: $0.entry.isrVersion,
                followers: $0.followers
            )
        }
        return try await self.proposeInBatches(commands).filter { $0 == .applied }.count
    }

    /// Proposes many commands, `importBatch` per log entry; the outcomes in command order.
    private func proposeInBatches(_ commands: [DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome] {
        var outcomes: [DirectoryOutcome] = []
        for start in stride(from: 0, to: commands.count, by: Self.importBatch) {
            outcomes += try await self.log.propose(
                Array(commands[start..<min(start + Self.importBatch, commands.count)])
            )
        }
        return outcomes
    }

    private func proposeOne(_ command: DirectoryCommand) async throws(NodeError) -> DirectoryOutcome {
        let outcomes = try await self.log.propose([command])
        guard let outcome = outcomes.first else {
            throw NodeError(.stateUnreadable, "the directory answered no outcome", status: 500)
        }
        return outcome
    }

    /// A one-node cluster's only member is this build: its directory takes this build's rules at
    /// once (a clustered leader waits for every member to announce them: `Roster.formatRaise`).
    private func raiseFormatAlone() async throws(NodeError) {
        let current = self.log.read(\.format)
        guard current < DirectoryFormat.supported,
            try await self.proposeOne(.raiseFormat(version: DirectoryFormat.supported)) == .applied
        else { return }
        self.logger.notice(
            "directory format raised",
            metadata: ["directory.format": "\(DirectoryFormat.supported)", "directory.previous_format": "\(current)"]
        )
    }

    /// Joins this node (id, storage id) and activates it. A member with this storage id under
    /// another node id is this node renamed (`TURSO_NODE_ID` or the host name changed): its
    /// namespaces move here and the old name is removed, so nothing is orphaned.
    private func registerSelf() async throws(NodeError) {
        let storageID = self.log.identity.storageID
        let (current, renamed) = self.log.read { state in
            (
                state.members[self.nodeID],
                state.members.values.filter {
                    $0.storageID == storageID && $0.id != self.nodeID && $0.state != .removed && $0.state != .left
                }
            )
        }
        if let current, current.storageID != storageID {
            throw NodeError(
                .stateUnreadable,
                "the directory records node \(self.nodeID) with another data directory (storage id \(current.storageID)); a node id names one data directory"
            )
        }
        if current?.state != .active {
            let outcomes = try await self.log.propose([
                .joinMember(id: self.nodeID, storageID: storageID, zone: self.zone),
                .activateMember(id: self.nodeID, storageID: storageID),
            ])
            if case .refused(let refusal)? = outcomes.last {
                throw NodeError(.stateUnreadable, "this node cannot become an active member: \(refusal)")
            }
        }
        for old in renamed {
            let owned = try self.log.owned(by: old.id)
            let moves = owned.filter { $0.state == .active }.map {
                DirectoryCommand.moveNamespace(name: $0.name, epoch: $0.epoch, owner: self.nodeID)
            }
            // Archives the old name began are finished (files still in place are archived as
            // leftovers if the name is created again).
            let archives = owned.filter { $0.state == .archiving }.map {
                DirectoryCommand.finishArchive(name: $0.name, epoch: $0.epoch)
            }
            let commands = archives + moves
            let refused = try await self.proposeInBatches(commands).filter { $0 != .applied }.count
            // Retired as "left", not removed: the old name may come back (a host name that returns),
            // and a removed member never can.
            _ = try await self.log.propose([
                .leaveMember(id: old.id, storageID: storageID), .leftMember(id: old.id, storageID: storageID),
            ])
            self.logger.warning(
                "this data directory was used under another node id: its namespaces moved to this one",
                metadata: [
                    "node.previous": "\(old.id)", "namespaces.moved": "\(moves.count)",
                    "namespaces.archived": "\(archives.count)", "commands.refused": "\(refused)",
                ]
            )
        }
    }

    /// The registry is the truth until it has been imported: a data directory from a build before
    /// the cluster log, or one a clustered run changed without the log (it clears the flag). Its
    /// records become create entries, and namespaces of this node the registry no longer has are
    /// archived in the log, once (a crash in the middle repeats it harmlessly).
    private func importRegistry() async throws(NodeError) {
        guard self.log.value("registry_imported") != .integer(1) else { return }
        let records = self.registry.all()
        let known = Set(records.map(\.name))
        let gone = try self.log.owned(by: self.nodeID).filter { !known.contains($0.name) }
        for entry in gone {
            if entry.state == .active {
                _ = try await self.log.propose([.beginArchive(name: entry.name, epoch: entry.epoch)])
            }
            _ = try await self.log.propose([.finishArchive(name: entry.name, epoch: entry.epoch)])
        }
        let commands = records.map { Self.creation(of: $0, owner: self.nodeID) }
        let imported = try await self.proposeInBatches(commands).filter { $0 == .applied }.count
        try self.log.setValue("registry_imported", .integer(1))
        if !records.isEmpty || !gone.isEmpty {
            self.logger.notice(
                "imported the namespace registry into the cluster log",
                metadata: [
                    "namespaces.imported": "\(imported)", "namespaces.registered": "\(records.count)",
                    "namespaces.archived": "\(gone.count)",
                ]
            )
        }
    }

    /// Writes the directory's entries for `names` into the registry: entries this node owns
    /// (active or being archived) are upserted with their metadata, everything else removed.
    static func mirror(
        _ names: Set<String>,
        log: DirectoryLog,
        registry: NamespaceRegistry,
        nodeID: String,
        logger: Logger
    ) async {
        guard !names.isEmpty else { return }
        let found = log.entries(names)
        let entries = names.map { ($0, found[$0]) }
        var upserts: [NamespaceRecord] = []
        var removals: [String] = []
        for (name, entry) in entries {
            guard let entry, entry.owner == nodeID else {
                if registry.record(name) != nil { removals.append(name) }
                continue
            }
            var record = NamespaceRecord(entry)
            if let existing = registry.record(name) {
                record.lastAccessAt = existing.lastAccessAt
                if existing == record { continue }  // already mirrored (the common case at start)
            } else {
                // Gained here (created, or moved from another owner): idle from now, so GC never
                // archives a namespace just because it arrived.
                record.lastAccessAt = max(record.createdAt, NamespaceService.nowMilliseconds())
            }
            upserts.append(record)
        }
        do {
            try await registry.mirror(upserts: upserts, removals: removals)
        } catch {
            // The directory is the truth; the next start mirrors everything again.
            logger.error("cannot mirror the directory into the registry", metadata: ["error": "\(error)"])
        }
    }

    static func error(_ refusal: DirectoryRefusal, name: String) -> NodeError {
        switch refusal {
        case .noSuchNamespace: .notFound("namespace \(name) does not exist")
        case .namespaceExists: NodeError(.exists, "namespace \(name) already exists", status: 409)
        case .namespaceNotActive:
            NodeError(.backendUnavailable, "namespace \(name) is being archived", status: 503, retryAfter: 1)
        case .invalidName: NodeError(.invalidName, "invalid namespace name \(name)", status: 400)
        case .epochMismatch, .isrVersionMismatch:
            NodeError(.misdirected, "namespace \(name) changed owner or replicas meanwhile; retry", status: 409)
        case .noSuchMember, .memberNotActive:
            NodeError.ownerUnavailable(
                "the member that would own namespace \(name) is not active in the cluster log yet",
                owner: nil
            )
        default: NodeError(.stateUnreadable, "the directory refused the change of \(name): \(refusal)", status: 500)
        }
    }
}

extension NamespaceRecord {
    /// The registry record a directory entry describes (its access time is the holder's own).
    init(_ entry: NamespaceEntry) {
        self.init(
            name: entry.name,
            origin: entry.origin == .explicit ? .explicit : .auto,
            createdAt: Int64(clamping: entry.createdAt)
        )
        self.locked = entry.locked
        self.ttlSeconds = entry.ttlMilliseconds.map { Double($0) / 1000 }
    }

    /// The creation time as the directory keeps it: what tells incarnations of one name apart.
    var incarnation: UInt64 { UInt64(max(self.createdAt, 0)) }
}
