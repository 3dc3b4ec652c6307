import Consensus
import Crypto
import Directory
import Foundation
import Logging
import SQLiteSupport
import Synchronization

/// This node's replica of the cluster log and the directory applied from it: the I/O shell around
/// the pure `RaftNode` and `DirectoryState`.
///
/// One drain loop at a time takes a `Ready`, persists its entries and hard state (a synced SQLite
/// transaction) before anything else, applies the committed entries to the directory, persists
/// the changed rows with the applied index, lets the observer (the registry mirror) see what
/// changed, answers the proposers whose entries were applied, and only then calls `advance`.
/// Proposals that arrive while a Ready is being persisted join the next one, so one fsync covers
/// many of them.
final class DirectoryLog: Sendable {
    /// One command as applied, with its outcome, in log order.
    struct Applied: Sendable {
        let index: UInt64
        let command: DirectoryCommand
        let outcome: DirectoryOutcome
    }

    /// What changed in the directory: commands applied in log order, or a snapshot that replaced
    /// it (with every name it had or has).
    enum Change: Sendable {
        case applied([Applied])
        case snapshot(Set<String>)

        var namespaces: Set<String> {
            switch self {
            case .applied(let applied):
                Set(applied.filter { $0.outcome == .applied }.compactMap(\.command.namespaceName))
            case .snapshot(let names): names
            }
        }
    }

    typealias Observer = @Sendable (Change) async -> Void

    private struct Waiter {
        let term: UInt64
        let started: ContinuousClock.Instant
        let continuation: CheckedContinuation<LocalProposal, Never>
    }

    private struct Core {
        var raft: RaftNode
        /// The applied directory without its namespace rows (on disk), except while a batch is
        /// applied and persisted: then the rows it touched.
        var directory: DirectoryState
        var cache: DirectoryCache
        /// Raised whenever rows reach disk: a row read from disk meanwhile is not cached.
        var generation: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
        var draining = false
        var failure: NodeError?
        var stopped = false
        var haltReported = false
        /// A halted leader handed leadership on (once per process).
        var handedOff = false
        /// The applied index whose changes the observer (the registry mirror) has seen: what this
        /// member serves reflects the log up to here.
        var observedIndex: UInt64 = 0
        /// Forwarded proposals waiting for the observer to reach their index, by ticket.
        var observing: [UInt64: (index: UInt64, continuation: CheckedContinuation<Bool, Never>)] = [:]
        var nextTicket: UInt64 = 0
    }

    /// The log length that triggers a compaction (a snapshot of the directory at the applied index
    /// replaces the entries before it).
    struct Compaction: Sendable {
        var threshold: UInt64 = 10_000
    }

    /// Namespace rows kept in memory for routing (the rest are read from `directory.db`).
    static let cacheCapacity = 20_000

    /// Raft's clock: a tick every 20 ms, heartbeats every 5 ticks (100 ms), an election timeout
    /// drawn from 45..<90 ticks (0.9-1.8 s). Fine ticks spread the survivors' timeouts: with
    /// 100 ms ticks two followers drew the same one often enough to split the vote (another
    /// timeout, 2.5 s failovers in the benchmark).
    static let tickInterval: Duration = .milliseconds(20)
    static let heartbeatTicks = 5
    static let electionTicks = 45

    let identity: StorageIdentity
    let clusterID: String
    private let compaction: Compaction
    private let core: Mutex<Core>
    private let raftStore: RaftStore
    private let directoryStore: DirectoryStore
    private let metrics: NodeMetrics
    private let logger: Logger
    private let observer = Mutex<Observer?>(nil)
    /// Node ids by replica id, as gossip shows them (for log lines operators can read).
    private let nodeNames = Mutex<[UInt64: String]>([:])
    private let transport = Mutex<RaftTransport?>(nil)
    /// Up to `DirectoryService.importBatch` commands per entry.
    private let batcher = ProposalBatcher(maxCommands: DirectoryService.importBatch)
    private let ticker = Mutex<Task<Void, Never>?>(nil)

    /// Opens this node's log and directory under `stateDirectory`. A node that was never part of a
    /// group bootstraps one: of itself alone, or of `bootstrapVoters`; or, with `joining`, starts
    /// an empty log of that cluster that the leader fills. State of another cluster or of another
    /// data directory is refused.
    init(
        stateDirectory: String,
        identity: StorageIdentity,
        metrics: NodeMetrics,
        logger: Logger,
        compaction: Compaction = Compaction(),
        cacheCapacity: Int = DirectoryLog.cacheCapacity,
        bootstrapVoters: [ReplicaID]? = nil,
        joining: String? = nil
    ) throws(NodeError) {
        let raftStore = try RaftStore(directory: stateDirectory)
        let directoryStore = try DirectoryStore(directory: stateDirectory)
        var directory = try directoryStore.load()
        let persisted: PersistentState
        let clusterID: String
        if let loaded = try raftStore.load() {
            guard let owner = raftStore.value("storage_id")?.textValue, owner == identity.storageID else {
                throw NodeError(
                    .stateUnreadable,
                    "\(raftStore.path) belongs to another data directory (storage id mismatch); it was copied here"
                )
            }
            guard let id = raftStore.value("cluster_id")?.textValue else {
                throw NodeError(.stateUnreadable, "\(raftStore.path) has no cluster id")
            }
            persisted = loaded
            clusterID = id
        } else {
            guard directory.appliedIndex == 0 else {
                throw NodeError(
                    .stateUnreadable,
                    "\(directoryStore.path) was applied through index \(directory.appliedIndex) but the Raft log is missing; restore \(raftStore.path) rather than starting a new cluster over it"
                )
            }
            if let joining {
                persisted = .joining
                clusterID = joining
            } else {
                persisted = PersistentState.bootstrap(
                    ClusterConfiguration(voters: bootstrapVoters ?? [identity.replicaID])
                )
                clusterID = bootstrapVoters.map(Self.clusterID(founders:)) ?? UUID().uuidString.lowercased()
            }
            try raftStore.setValues(["storage_id": .text(identity.storageID), "cluster_id": .text(clusterID)])
            try raftStore.save(
                hardState: persisted.hardState,
                entries: persisted.entries,
                snapshot: persisted.snapshot
            )
            logger.info(
                joining == nil ? "bootstrapped the cluster log" : "joining the cluster log",
                metadata: [
                    "cluster.id": "\(clusterID)",
                    "raft.voters": "\(bootstrapVoters ?? (joining == nil ? [identity.replicaID] : []))",
                ]
            )
        }
        if let found = directoryStore.value("cluster_id")?.textValue {
            guard found == clusterID else {
                throw NodeError(
                    .stateUnreadable,
                    "\(directoryStore.path) belongs to cluster \(found), the Raft log to \(clusterID); refusing to mix them"
                )
            }
        } else {
            try directoryStore.setValue("cluster_id", .text(clusterID))
        }
        let lastIndex = persisted.snapshot.metadata.index + UInt64(persisted.entries.count)
        guard directory.appliedIndex <= lastIndex else {
            throw NodeError(
                .stateUnreadable,
                "\(directoryStore.path) was applied through index \(directory.appliedIndex) but \(raftStore.path) ends at \(lastIndex): the log is older than the directory (restored from another time?)"
            )
        }
        // Behind the log's snapshot: a snapshot received from the leader was saved but the crash
        // came before the directory was replaced by it. Finish that now.
        if directory.appliedIndex < persisted.snapshot.metadata.index, directory.haltedAt == nil {
            let snapshot: DirectoryState
            do {
                snapshot = try DirectoryCodec.decodeState(persisted.snapshot.data)
            } catch {
                throw NodeError(
                    .stateUnreadable,
                    "\(directoryStore.path) is at index \(directory.appliedIndex), behind the log's snapshot at \(persisted.snapshot.metadata.index), whose data is unreadable: \(error)"
                )
            }
            if directory.halts(before: snapshot, at: persisted.snapshot.metadata.index) {
                try directoryStore.persist(DirectoryStore.Rows(state: directory, namespaces: [], members: []))
            } else {
                try directoryStore.replace(with: snapshot)
                directory = snapshot.unloaded
            }
        }
        var settings = RaftConfiguration(id: identity.replicaID, randomSeed: UInt64.random(in: 0...UInt64.max))
        settings.electionTicks = Self.electionTicks
        settings.heartbeatTicks = Self.heartbeatTicks
        let raft: RaftNode
        do {
            raft = try RaftNode(settings: settings, restoring: persisted)
        } catch {
            throw NodeError(.stateUnreadable, "cannot restore the Raft log \(raftStore.path): \(error)")
        }
        if directory.haltedAt != nil {
            logger.critical("the directory stopped applying: the log needs a newer turso-server")
        }
        self.identity = identity
        self.clusterID = clusterID
        self.compaction = compaction
        self.raftStore = raftStore
        self.directoryStore = directoryStore
        self.metrics = metrics
        self.logger = logger
        self.core = Mutex(
            Core(
                raft: raft,
                directory: directory,
                cache: DirectoryCache(capacity: cacheCapacity),
                observedIndex: directory.appliedIndex
            )
        )
        self.metrics.raftLogEntries.set(Double(raftStore.entryCount()))
    }

    /// The id founders that bootstrap together agree on without talking: derived from their sorted
    /// replica ids (a one-voter cluster draws a random one).
    static func clusterID(founders: [ReplicaID]) -> String {
        let text = founders.map(\.rawValue).sorted().map(String.init).joined(separator: ",")
        let digest = Array(SHA256.hash(data: Data(text.utf8)).prefix(16))
        return UUID(
            uuid: (
                digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
                digest[8], digest[9], digest[10], digest[11], digest[12], digest[13], digest[14], digest[15]
            )
        ).uuidString.lowercased()
    }

    /// How long a proposer waits for its entry to be applied before it is told the outcome is
    /// unknown (a leader cut off from its quorum; a snapshot that replaced the entry).
    static let proposalTimeout: Duration = .seconds(30)

    static let unknown = NodeError(
        .ownerUnavailable,
        "the change was not confirmed in time; its outcome is unknown: check and retry",
        status: 503,
        retryAfter: 1
    )

    private static func takeExpired(_ waiters: inout [UInt64: Waiter], now: ContinuousClock.Instant) -> [Waiter] {
        let expired = waiters.filter { now - $0.value.started > Self.proposalTimeout }
        for index in expired.keys { waiters[index] = nil }
        return Array(expired.values)
    }

    static let lost = NodeError(
        .ownerUnavailable,
        "the change was lost to a leader change; retry",
        status: 503,
        retryAfter: 1
    )

    /// A value kept beside the directory.
    func value(_ key: String) -> SQLiteValue? { self.directoryStore.value(key) }
    func setValue(_ key: String, _ value: SQLiteValue) throws(NodeError) {
        try self.directoryStore.setValue(key, value)
    }

    /// Called with every applied batch's commands before the proposers are answered.
    func observe(_ observer: @escaping Observer) { self.observer.withLock { $0 = observer } }

    /// Sends this replica's messages from now on (without one, a multi-voter group cannot elect).
    func connect(_ transport: RaftTransport) { self.transport.withLock { $0 = transport } }

    /// Names replica `replica` after its node (log lines, and the check that a member speaks only
    /// for itself).
    func name(_ replica: ReplicaID, node: String) {
        self.nodeNames.withLock { $0[replica.rawValue] = node }
    }

    /// The node gossip last showed with replica `replica`, if any.
    func nodeName(of replica: ReplicaID) -> String? { self.nodeNames.withLock { $0[replica.rawValue] } }

    /// The transport `connect` gave.
    var connectedTransport: RaftTransport? { self.transport.withLock { $0 } }

    /// A message from another replica. False once this log has stopped or failed: the stream that
    /// brought it ends (a stopping node must not keep a sender's request open).
    @discardableResult
    func receive(_ message: RaftMessage) -> Bool {
        let running = self.core.withLock { core in
            guard core.failure == nil, !core.stopped else { return false }
            core.raft.step(message)
            return true
        }
        if running { self.kick() }
        return running
    }

    /// Starts the clock. A sole voter elects itself at once (nobody else can lead) and returns once
    /// the log is replayed into the directory; a member of a larger group returns at once (the
    /// election and the replay follow as messages arrive).
    func start() async throws(NodeError) {
        let sole = self.core.withLock { core in
            guard core.raft.configuration.voters == [core.raft.id] else { return false }
            // Ticks until it campaigns (not beyond: each further campaign would raise the term again).
            for _ in 0..<(2 * Self.electionTicks) where core.raft.role == .follower || core.raft.role == .preCandidate {
                core.raft.tick()
            }
            return true
        }
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.tickInterval)
                guard let self else { return }
                let expired = self.core.withLock { core -> [Waiter] in
                    guard core.failure == nil else { return [] }
                    core.raft.tick()
                    return Self.takeExpired(&core.waiters, now: .now)
                }
                for waiter in expired { waiter.continuation.resume(returning: .failure(Self.unknown)) }
                self.kick()
            }
        }
        self.ticker.withLock { $0 = task }
        self.kick()
        guard sole else { return }
        // It leads once its vote is on disk (the drain loop saves it): until then proposals are refused.
        // Generous: on a starved machine (2 cores busy elsewhere) saving one vote has taken 30 s.
        let deadline = ContinuousClock.now + .seconds(120)
        while self.status.role != .leader {
            if let failure = self.status.failure { throw NodeError(.stateUnreadable, failure, status: 503) }
            guard ContinuousClock.now < deadline, !Task.isCancelled else {
                throw NodeError(.stateUnreadable, "the cluster log did not elect this sole voter", status: 503)
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        _ = try await self.propose([])
    }

    func stop() {
        self.core.withLock { $0.stopped = true }
        self.ticker.withLock { task in
            task?.cancel()
            task = nil
        }
        self.transport.withLock { $0 }?.close()
    }

    /// Reads the applied directory (under a short lock; do not block in `body`): its members,
    /// format, position and counts. Its namespace rows are not in memory: read them with `entry`,
    /// `entries`, `owned` and `page`.
    func read<T>(_ body: (DirectoryState) -> T) -> T {
        self.core.withLock { body($0.directory) }
    }

    /// The applied directory entry of `name`, if it exists in any state.
    func entry(_ name: String) -> NamespaceEntry? { self.entries([name])[name] }

    /// The applied directory entries of those of `names` that exist, as they are on disk (a batch
    /// applied in memory is not seen before it is durable: a node that acted on it and crashed
    /// would restart without it), from the cache when recently read or changed.
    ///
    /// A directory that cannot be read stops the process (as etcd does on a storage read error):
    /// taking an unreadable entry for an absent one would make this node drop files it owns, and
    /// nothing it does is safe without its directory. A restart checks the database again.
    func entries(_ names: some Collection<String>) -> [String: NamespaceEntry] {
        do {
            return try self.lookUp(names)
        } catch {
            self.logger.critical("cannot read the directory; stopping", metadata: ["error": "\(error.message)"])
            fatalError("cannot read the directory: \(error.message)")
        }
    }

    private func lookUp(_ names: some Collection<String>) throws(NodeError) -> [String: NamespaceEntry] {
        var found: [String: NamespaceEntry] = [:]
        let (missing, generation) = self.core.withLock { core -> ([String], UInt64) in
            var missing: [String] = []
            for name in names {
                if let row = core.cache.get(name) {
                    found[name] = row
                } else {
                    missing.append(name)
                }
            }
            return (missing, core.generation)
        }
        guard !missing.isEmpty else { return found }
        let rows = try self.directoryStore.entries(missing)
        for entry in rows { found[entry.name] = entry }
        self.core.withLock { core in
            guard core.generation == generation else { return }
            for name in missing { core.cache.put(name, found[name]) }
        }
        return found
    }

    /// The namespaces `owner` owns (in `state` when given), sorted by name, as persisted.
    func owned(by owner: String, state: NamespaceEntry.State? = nil) throws(NodeError) -> [NamespaceEntry] {
        try self.directoryStore.owned(by: owner, state: state)
    }

    /// Up to `limit` namespaces after `after` in name order (all of them without a limit), as persisted.
    func page(after: String?, limit: Int?) throws(NodeError) -> [NamespaceEntry] {
        try self.directoryStore.page(after: after, limit: limit)
    }

    struct Status: Sendable {
        var role: RaftRole
        var leader: ReplicaID?
        var term: UInt64
        var commitIndex: UInt64
        var appliedIndex: UInt64
        /// The format the log has raised the directory's rules to.
        var directoryFormat: UInt32
        var voters: [ReplicaID]
        var learners: [ReplicaID]
        var failure: String?
        /// A configuration change is appended and not yet committed.
        var pendingChange: Bool
        /// The highest index known on each member, by replica id (the leader's view; empty elsewhere).
        var matchIndex: [UInt64: UInt64]
    }

    var status: Status {
        self.core.withLock { core in
            Status(
                role: core.raft.role,
                leader: core.raft.leader,
                term: core.raft.term,
                commitIndex: core.raft.commitIndex,
                appliedIndex: core.directory.appliedIndex,
                directoryFormat: core.directory.format,
                voters: core.raft.configuration.voters,
                learners: core.raft.configuration.learners,
                failure: core.failure?.message,
                pendingChange: core.raft.hasPendingConfigurationChange,
                matchIndex: Dictionary(
                    core.raft.replicationProgress.map {
                        ($0.id.rawValue, $0.id == core.raft.id ? core.raft.lastIndex : $0.match)
                    },
                    uniquingKeysWith: max
                )
            )
        }
    }

    /// Appends `commands` to the log and returns their outcomes once applied here. Commands that
    /// members propose concurrently share an entry (`ProposalBatcher`); a caller's own commands stay
    /// together and in order. An empty list is a barrier: everything committed before it is applied
    /// when it returns.
    func propose(_ commands: [DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome] {
        // Checked per caller, before batching: one caller's command never fails another's.
        try self.checkFormat(commands)
        guard !commands.isEmpty else { return try await self.proposeEntry(commands) }
        return try await self.batcher.propose(commands) { batch async throws(NodeError) in
            try await self.proposeEntry(batch)
        }
    }

    /// Appends `commands` as one log entry and returns their outcomes once it is applied here. On a
    /// member that does not lead, the entry is forwarded to the leader (through the transport) and
    /// the answer waits until this member has applied it too, so what it reads next includes it.
    private func proposeEntry(_ commands: [DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome] {
        let bytes = DirectoryCodec.encode(DirectoryBatch(commands: commands))
        switch await self.proposeLocally(bytes) {
        case .success(_, let outcomes):
            return outcomes
        case .failure(let error):
            throw error
        case .notLeader(let leader, let error):
            guard let leader, let transport = self.transport.withLock({ $0 }) else { throw error }
            let result = try await transport.forward(bytes, to: leader)
            guard result.outcomes.count == commands.count else {
                throw NodeError(
                    .peerProtocol,
                    "the leader answered \(result.outcomes.count) outcomes for \(commands.count) changes",
                    status: 502
                )
            }
            try await self.waitUntilObserved(result.index)
            return result.outcomes
        }
    }

    /// Refuses commands that need rules the log has not raised the directory to yet (a member that
    /// does not know them would stop applying). A raise itself is what moves the line.
    private func checkFormat(_ commands: [DirectoryCommand]) throws(NodeError) {
        let needed =
            commands.map { command -> UInt32 in
                if case .raiseFormat = command { return 1 }
                return command.requiredFormat
            }.max() ?? 1
        let usable = DirectoryFormat.usable(raised: self.read(\.format))
        guard needed <= usable else {
            throw NodeError(
                .ownerUnavailable,
                "this change needs directory format \(needed); the cluster uses format \(usable) until every member announces \(needed) (an upgrade in progress?)",
                status: 503,
                retryAfter: 5
            )
        }
    }

    /// Proposes one configuration change on the leader (the caller sees it done in `status`).
    func proposeChange(_ change: ConfigurationChange) throws(NodeError) {
        try self.core.withLock { core throws(NodeError) in
            if let failure = core.failure { throw failure }
            do {
                _ = try core.raft.proposeChange(change)
            } catch {
                throw NodeError(
                    .ownerUnavailable,
                    "the configuration change \(change) was refused: \(error)",
                    status: 503
                )
            }
        }
        self.kick()
    }

    enum LocalProposal: Sendable {
        case success(index: UInt64, outcomes: [DirectoryOutcome])
        case failure(NodeError)
        /// This member does not lead; `leader` is who does, when known.
        case notLeader(ReplicaID?, NodeError)
    }

    /// Proposes an encoded batch on this member only (a forwarded proposal arrives here on the
    /// leader): its index and outcomes once applied here.
    func proposeLocally(_ bytes: [UInt8]) async -> LocalProposal {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<LocalProposal, Never>) in
            let refusal = self.core.withLock { core -> LocalProposal? in
                if let failure = core.failure { return .failure(failure) }
                if let halted = core.directory.haltedAt {
                    return .failure(
                        NodeError(
                            .stateUnreadable,
                            "the directory stopped at log index \(halted.index): it needs format \(halted.format); upgrade turso-server",
                            status: 503
                        )
                    )
                }
                do throws(RaftError) {
                    let position = try core.raft.propose(bytes)
                    // An older proposal at this index was overwritten by another leader's entries.
                    core.waiters[position.index]?.continuation.resume(returning: .failure(Self.lost))
                    core.waiters[position.index] = Waiter(
                        term: position.term,
                        started: .now,
                        continuation: continuation
                    )
                    return nil
                } catch {
                    let unavailable = NodeError(
                        .ownerUnavailable,
                        "the cluster log cannot take changes now (\(error)); retry shortly",
                        status: 503,
                        retryAfter: 1
                    )
                    return error.code == .notLeader
                        ? LocalProposal.notLeader(error.leader, unavailable) : LocalProposal.failure(unavailable)
                }
            }
            if let refusal { continuation.resume(returning: refusal) } else { self.kick() }
        }
        return result
    }

    /// The applied index whose rows are on disk and whose changes the observer has seen.
    var observedIndex: UInt64 { self.core.withLock { $0.observedIndex } }

    /// Waits (bounded, 5 s) until the observer has seen `index`; false past the bound.
    func awaitObserved(_ index: UInt64) async -> Bool {
        do {
            try await self.waitUntilObserved(index)
            return true
        } catch {
            return false
        }
    }

    /// Waits (bounded) until this member has applied `index` and its observer (the registry
    /// mirror) has seen it: a forwarded proposal's answer then reflects what this member serves,
    /// as a local proposal's does. Past the bound the caller is told the outcome but that this
    /// member does not serve it yet.
    private func waitUntilObserved(_ index: UInt64) async throws(NodeError) {
        let ticket = self.core.withLock { core in
            defer { core.nextTicket += 1 }
            return core.nextTicket
        }
        let timeout = Task {
            try? await Task.sleep(for: .seconds(5))
            self.core.withLock { $0.observing.removeValue(forKey: ticket) }?.continuation.resume(returning: false)
        }
        defer { timeout.cancel() }
        let observed = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let already = self.core.withLock { core in
                guard core.observedIndex < index else { return true }
                core.observing[ticket] = (index, continuation)
                return false
            }
            if already { continuation.resume(returning: true) }
        }
        guard observed else {
            throw NodeError(
                .ownerUnavailable,
                "the change was committed at log index \(index) but this member has not applied it yet; retry shortly",
                status: 503,
                retryAfter: 1
            )
        }
    }

    /// Starts the drain loop unless it runs.
    private func kick() {
        let start = self.core.withLock { core in
            guard !core.draining, core.failure == nil, core.raft.hasReady else { return false }
            core.draining = true
            return true
        }
        if start { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let ready: Ready? = self.core.withLock { core in
                guard core.failure == nil, core.raft.hasReady else {
                    core.draining = false
                    return nil
                }
                return core.raft.ready()
            }
            guard let ready else { return }
            do {
                try await self.handle(ready)
            } catch {
                self.fail(error)
                return
            }
        }
    }

    private func handle(_ ready: Ready) async throws(NodeError) {
        if let soft = ready.softState {
            self.metrics.raftLeaderChanges.increment()
            let leader = soft.leader.map { replica in
                self.nodeName(of: replica).map { "\($0) (\(replica))" } ?? "\(replica)"
            }
            self.logger.info(
                "raft leader changed",
                metadata: [
                    "raft.role": "\(soft.role)", "raft.leader": "\(leader ?? "none")",
                    "raft.term": "\(self.core.withLock { $0.raft.term })",
                ]
            )
            if soft.role != .leader {
                // Proposals made while leading may still commit under the next leader, or not: say
                // so now rather than when they time out.
                let orphaned = self.core.withLock { core in
                    defer { core.waiters = [:] }
                    return Array(core.waiters.values)
                }
                for waiter in orphaned { waiter.continuation.resume(returning: .failure(Self.unknown)) }
            }
        }
        let store = self.raftStore
        let hardState = ready.hardState
        let entries = ready.entries
        let snapshot = ready.snapshot
        let batches = try Self.decode(ready.committedEntries)
        // The rows the committed batches read are loaded while the log is saved (another file;
        // only this loop writes the directory, so they stay current), unless a snapshot replaces
        // the rows first.
        let touched = batches.values.reduce(into: Set<String>()) { $0.formUnion($1.namespaceNames) }
        let early: Task<[String: NamespaceEntry], any Error>? =
            snapshot == nil && !touched.isEmpty
            ? Task { try await BlockingIO.run { () throws(NodeError) in try self.lookUp(touched) } } : nil
        do {
            try await BlockingIO.run { () throws(NodeError) in
                try store.save(hardState: hardState, entries: entries, snapshot: snapshot)
            }
        } catch {
            _ = try? await early?.value
            throw error
        }
        if let snapshot { try await self.install(snapshot) }
        // Messages go out only after the save above: a vote or an acknowledgement must survive a crash.
        if !ready.messages.isEmpty, let transport = self.transport.withLock({ $0 }) {
            transport.send(ready.messages)
            // A snapshot handed to the transport counts as sent; if it was lost, the follower's
            // progress goes back to probing and the leader sends it again.
            let snapshotTargets = ready.messages.compactMap { message -> ReplicaID? in
                if case .snapshot = message.kind { return message.to }
                return nil
            }
            if !snapshotTargets.isEmpty {
                self.core.withLock { core in
                    for target in snapshotTargets { core.raft.reportSnapshot(to: target, failed: false) }
                }
            }
        }
        if !ready.committedEntries.isEmpty {
            let loaded: [String: NamespaceEntry]
            do {
                loaded = try await early?.value ?? self.lookUp(touched)
            } catch let error as NodeError {
                throw error
            } catch {
                throw NodeError(.stateUnreadable, "cannot read the directory: \(error)")
            }
            try await self.apply(ready.committedEntries, batches: batches, touched: touched, loaded: loaded)
        }
        self.core.withLock { $0.raft.advance(ready) }
        if let hardState { self.metrics.raftTerm.set(Double(hardState.term)) }
        try await self.compactIfLong()
    }

    /// The directory batches of committed entries, by index (entries without one are skipped).
    private static func decode(_ committed: [LogEntry]) throws(NodeError) -> [UInt64: DirectoryBatch] {
        var batches: [UInt64: DirectoryBatch] = [:]
        for entry in committed {
            guard case .command(let bytes) = entry.payload else { continue }
            do {
                batches[entry.index] = try DirectoryCodec.decode(bytes)
            } catch {
                throw NodeError(.stateUnreadable, "log entry \(entry.index) is not a directory batch: \(error)")
            }
        }
        return batches
    }

    /// Applies committed entries whose batches read `touched`, with those rows `loaded` from disk.
    private func apply(
        _ committed: [LogEntry],
        batches: [UInt64: DirectoryBatch],
        touched: Set<String>,
        loaded: [String: NamespaceEntry]
    ) async throws(NodeError) {
        var applied: [Applied] = []
        var results: [(index: UInt64, term: UInt64, outcomes: [DirectoryOutcome]?)] = []
        var namespaces: Set<String> = []
        var members: Set<String> = []
        let rows = self.core.withLock { core -> DirectoryStore.Rows in
            core.directory.load(loaded.values)
            for entry in committed {
                guard let batch = batches[entry.index] else {
                    core.directory.skip(to: entry.index)
                    // A proposal waiting at this index was replaced by another leader's entry.
                    results.append((entry.index, entry.term, nil))
                    continue
                }
                let outcomes = core.directory.apply(batch, at: entry.index)
                results.append((entry.index, entry.term, outcomes))
                for (command, outcome) in zip(batch.commands, outcomes ?? []) {
                    applied.append(Applied(index: entry.index, command: command, outcome: outcome))
                    guard outcome == .applied else { continue }
                    if case .moveNamespace(let name, let epoch, let owner) = command {
                        self.logger.info(
                            "namespace moved",
                            metadata: ["namespace": "\(name)", "move.to": "\(owner)", "move.epoch": "\(epoch + 1)"]
                        )
                    }
                    if let name = command.namespaceName { namespaces.insert(name) }
                    if let id = command.memberID { members.insert(id) }
                }
            }
            if let halted = core.directory.haltedAt, !core.haltReported {
                core.haltReported = true
                self.logger.critical(
                    "the directory stopped applying: log entry needs rules this build does not know; upgrade turso-server",
                    metadata: ["raft.index": "\(halted.index)", "directory.format": "\(halted.format)"]
                )
            }
            if core.directory.haltedAt != nil, !core.handedOff { core.handedOff = Self.handOffLeadership(&core.raft) }
            return DirectoryStore.Rows(state: core.directory, namespaces: namespaces, members: members)
        }
        let store = self.directoryStore
        try await BlockingIO.run { () throws(NodeError) in try store.persist(rows) }
        self.core.withLock { core in
            // Readers read disk until the batch is durable; its rows are cached once it is.
            for name in touched { core.cache.put(name, core.directory.namespaces[name]) }
            core.directory.unload()
            core.generation += 1
        }
        if !applied.isEmpty, let observer = self.observer.withLock({ $0 }) { await observer(.applied(applied)) }
        self.markObserved(rows.appliedIndex)
        let now = ContinuousClock.now
        let answered = self.core.withLock { core in
            results.compactMap { result in
                core.waiters.removeValue(forKey: result.index).map { (result, $0) }
            }
        }
        for (result, waiter) in answered {
            if waiter.term != result.term {
                waiter.continuation.resume(returning: .failure(Self.lost))
            } else if let outcomes = result.outcomes {
                self.metrics.raftCommitLatency.record(now - waiter.started)
                waiter.continuation.resume(returning: .success(index: result.index, outcomes: outcomes))
            } else {
                waiter.continuation.resume(
                    returning: .failure(
                        NodeError(
                            .stateUnreadable,
                            "the directory stopped applying; upgrade turso-server",
                            status: 503
                        )
                    )
                )
            }
        }
        let (commit, appliedIndex) = self.core.withLock { ($0.raft.commitIndex, $0.directory.appliedIndex) }
        self.metrics.raftCommitIndex.set(Double(commit))
        self.metrics.raftAppliedIndex.set(Double(appliedIndex))
    }

    /// A snapshot from the leader (already saved in raft.db): the directory becomes its data, and
    /// the registry mirror follows.
    private func install(_ snapshot: Snapshot) async throws(NodeError) {
        let state: DirectoryState
        do {
            state = try DirectoryCodec.decodeState(snapshot.data)
        } catch {
            throw NodeError(
                .stateUnreadable,
                "the snapshot at index \(snapshot.metadata.index) is unreadable: \(error)"
            )
        }
        let store = self.directoryStore
        // A directory under rules this build does not know is not taken: it stops here, as it
        // would at a batch of that format, until an upgraded build replays from the snapshot.
        let halted = self.core.withLock { core in
            core.directory.halts(before: state, at: snapshot.metadata.index) ? core.directory : nil
        }
        if let halted {
            let header = DirectoryStore.Rows(state: halted, namespaces: [], members: [])
            try await BlockingIO.run { () throws(NodeError) in try store.persist(header) }
            self.logger.critical(
                "the cluster log sent a directory this build cannot apply: upgrade turso-server",
                metadata: ["raft.index": "\(snapshot.metadata.index)", "directory.format": "\(state.format)"]
            )
            return
        }
        // No row read from disk while the rows are replaced is cached (it may be of either side):
        // the generation moves before and after, and the cache is emptied after.
        self.core.withLock { $0.generation += 1 }
        let replaced = try await BlockingIO.run { () throws(NodeError) -> Set<String> in
            let names = try store.names()
            try store.replace(with: state)
            return names
        }
        let (names, covered) = self.core.withLock { core in
            core.directory = state.unloaded
            core.cache.removeAll()
            core.generation += 1
            // Proposals the snapshot covers may or may not be in it: their outcome is unknown here.
            let covered = core.waiters.filter { $0.key <= snapshot.metadata.index }
            for index in covered.keys { core.waiters[index] = nil }
            return (replaced.union(state.namespaces.keys), Array(covered.values))
        }
        for waiter in covered { waiter.continuation.resume(returning: .failure(Self.unknown)) }
        self.logger.notice(
            "installed a snapshot of the directory",
            metadata: ["raft.index": "\(snapshot.metadata.index)"]
        )
        if let observer = self.observer.withLock({ $0 }) { await observer(.snapshot(names)) }
        self.markObserved(state.appliedIndex)
    }

    private func markObserved(_ index: UInt64) {
        let reached = self.core.withLock { core in
            core.observedIndex = max(core.observedIndex, index)
            let reached = core.observing.filter { $0.value.index <= core.observedIndex }
            for ticket in reached.keys { core.observing[ticket] = nil }
            return reached.values.map(\.continuation)
        }
        for continuation in reached { continuation.resume(returning: true) }
    }

    /// A halted member cannot take proposals: if it leads, it hands leadership to the most
    /// caught-up other voter, once (if every voter is halted, leadership does not circle forever).
    /// Returns whether it did.
    private static func handOffLeadership(_ raft: inout RaftNode) -> Bool {
        guard raft.role == .leader, raft.transferee == nil else { return false }
        let best = raft.replicationProgress.filter { $0.id != raft.id && raft.configuration.isVoter($0.id) }
            .max { $0.match < $1.match }
        guard let best else { return false }
        return (try? raft.transferLeadership(to: best.id)) != nil
    }

    /// Cuts the log once it is long: the snapshot is the directory encoded at the applied index
    /// (what a member that lags behind the cut is sent), its rows streamed from disk: this loop is
    /// the only writer, so disk holds exactly the applied index now.
    private func compactIfLong() async throws(NodeError) {
        let candidate: DirectoryState? = self.core.withLock { core in
            let applied = core.directory.appliedIndex
            guard applied == core.raft.appliedIndex, applied >= core.raft.firstIndex + self.compaction.threshold
            else { return nil }
            return core.directory
        }
        guard let candidate else { return }
        let directoryStore = self.directoryStore
        let data = try await BlockingIO.run { () throws(NodeError) -> [UInt8] in
            try directoryStore.scan { count, next throws(SQLiteError) in
                try DirectoryCodec.encode(candidate, namespaceCount: count, next: next)
            }
        }
        let snapshot: Snapshot? = self.core.withLock { core in
            try? core.raft.compact(through: candidate.appliedIndex, data: data)
        }
        guard let snapshot else { return }
        let store = self.raftStore
        try await BlockingIO.run { () throws(NodeError) in try store.compact(snapshot) }
        self.metrics.raftLogEntries.set(Double(store.entryCount()))
        self.logger.info("raft log compacted", metadata: ["raft.index": "\(snapshot.metadata.index)"])
    }

    /// A replica that cannot persist must not go on (its votes and acknowledgements would lie):
    /// every change is refused from now on and `/readyz` fails; a restart recovers from disk.
    private func fail(_ error: NodeError) {
        let waiters = self.core.withLock { core in
            core.failure = core.failure ?? error
            core.draining = false
            defer { core.waiters = [:] }
            return Array(core.waiters.values)
        }
        self.ticker.withLock { task in
            task?.cancel()
            task = nil
        }
        self.logger.critical("the cluster log failed; restart the node", metadata: ["error": "\(error.message)"])
        let refusal = NodeError(.stateUnreadable, "the cluster log failed: \(error.message)", status: 503)
        for waiter in waiters { waiter.continuation.resume(returning: .failure(refusal)) }
    }
}
