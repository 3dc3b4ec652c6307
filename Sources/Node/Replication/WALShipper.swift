import Foundation
import Logging
import NIOHTTP1
import Replication
import SyncServer
import Synchronization

/// The owner side of WAL shipping. For every namespace this node owns with followers and runs, it
/// reads what the WAL committed since the last look (`WALTail`) and brings each follower's copy up
/// to it: the bytes that continue the copy, the retirement of a generation the copy holds whole,
/// or a full copy when nothing of it can be continued (`ShipmentPlan`). Shipping and checkpoints
/// of one namespace take turns under its lock, so a checkpoint retires only frames the reachable
/// followers hold (`prepareCheckpoint`), and its retirement reaches them next (`checkpointed`).
final class WALShipper: Sendable {
    struct Stream: Sendable {
        var tail = WALTail()
        /// The digest of the namespace's change history, and the history file it was read from.
        var base: String?
        var baseFile: FileIdentity?
        /// The generation this node's checkpoint retired last, valid only while the history file
        /// is still the one that checkpoint left (a checkpoint whose answer was lost changes it).
        var retired: ShipmentPlan.Retired?
        var retiredFile: FileIdentity?
        /// The replica set the copies below were learned under.
        var replicaSet: ReplicaSetKey?
        /// Followers that answered a shipment with a refusal since their last success: reachable
        /// but not holding the WAL, so they hold a checkpoint back (up to a bound).
        var refused: Set<String> = []
        /// Each follower's copy as it last answered (nil: ask).
        var copies: [String: ShipmentPlan.Copy] = [:]
        /// Each follower's history base, as it answered when asked: what a delta starts from.
        var since: [String: DatabaseFileDelta.Position] = [:]
        /// A follower that failed is left alone until then.
        var retryAt: [String: ContinuousClock.Instant] = [:]
    }

    /// A file as `stat` sees it: another inode, size or modification time is another content.
    struct FileIdentity: Sendable, Equatable {
        var inode: UInt64
        var size: Int64
        var modified: Int64

        init?(_ path: String) {
            var status = stat()
            guard stat(path, &status) == 0 else { return nil }
            self.inode = UInt64(status.st_ino)
            self.size = Int64(status.st_size)
            self.modified = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
        }
    }

    struct ReplicaSetKey: Sendable, Equatable {
        var epoch: UInt64
        var createdAt: UInt64
        var isrVersion: UInt64
    }

    /// Who and where: the shell around the shipper.
    struct Environment: Sendable {
        var nodeID: String
        var files: NamespaceFiles
        var peers: PeerClient
        var log: @Sendable () -> DirectoryLog?
        var peerAddress: @Sendable (String) -> String?
        var running: @Sendable () async -> [String]
    }

    static let interval: Duration = .milliseconds(50)
    /// How often namespaces whose backend is not running are looked at, and how many at a time.
    static let idleInterval: Duration = .seconds(10)
    static let idleBatch = 32
    static let retryAfter: Duration = .seconds(1)

    let environment: Environment
    let logger: Logger
    let metrics: NodeMetrics
    let locks = KeyedLock()
    private let streams = Mutex<[String: Stream]>([:])
    /// Namespaces not running whose followers all held them, and under which files and replica
    /// set: left alone until one of those changes.
    private let settledIdle = Mutex<[String: IdleState]>([:])

    struct IdleState: Sendable, Equatable {
        var wal: FileIdentity?
        var history: FileIdentity?
        var replicaSet: ReplicaSetKey
    }

    init(environment: Environment, metrics: NodeMetrics, logger: Logger) {
        self.environment = environment
        self.metrics = metrics
        self.logger = logger
    }

    /// Runs until cancelled.
    func run() async {
        var idleDue = ContinuousClock.now + Self.idleInterval
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.interval)
            await self.tick()
            if ContinuousClock.now >= idleDue {
                await self.shipIdle()
                idleDue = .now + Self.idleInterval
            }
        }
    }

    /// Brings the followers of namespaces that are not running up to date, `idleBatch` at a time:
    /// a follower that was away while its owner went idle, or an owner that restarted. A namespace
    /// whose followers all hold it is left alone (and its stream freed) until its WAL, its history
    /// or its replica set changes.
    func shipIdle() async {
        guard let log = self.environment.log(),
            let owned = try? log.owned(by: self.environment.nodeID, state: .active)
        else { return }
        let running = Set(await self.environment.running())
        let files = self.environment.files
        var due: [(String, NamespaceEntryRole, IdleState)] = []
        for entry in owned where !entry.followers.isEmpty && !running.contains(entry.name) {
            guard let role = self.role(entry.name, log: log) else { continue }
            let state = IdleState(
                wal: FileIdentity(files.livePath(entry.name, .wal)),
                history: FileIdentity(files.livePath(entry.name, .history)),
                replicaSet: role.replicaSet
            )
            if self.settledIdle.withLock({ $0[entry.name] }) == state { continue }
            due.append((entry.name, role, state))
            if due.count >= Self.idleBatch { break }
        }
        let names = Set(owned.map(\.name))
        self.settledIdle.withLock { $0 = $0.filter { names.contains($0.key) } }
        await withTaskGroup(of: Void.self) { group in
            for (name, role, state) in due {
                group.addTask {
                    await self.locks.withLock(name) {
                        // A few steps each: ask, then append, retire or copy.
                        for _ in 0..<4 {
                            await self.ship(name, role)
                            guard self.caughtUp(name, role) else { continue }
                            self.settledIdle.withLock { $0[name] = state }
                            self.streams.withLock { $0[name] = nil }
                            return
                        }
                    }
                }
            }
        }
    }

    /// Whether every follower of `name` holds all of it, as last heard.
    private func caughtUp(_ name: String, _ role: NamespaceEntryRole) -> Bool {
        guard let stream = self.streams.withLock({ $0[name] }), let base = stream.base else { return false }
        return role.followers.allSatisfy { follower in
            guard let copy = stream.copies[follower] else { return false }
            return ShipmentPlan.next(tail: stream.tail, base: base, retired: stream.retired, copy: copy) == .upToDate
        }
    }

    /// One pass over the running namespaces this node owns with followers.
    func tick() async {
        guard let log = self.environment.log() else { return }
        let running = await self.environment.running()
        var shipping: [(String, NamespaceEntryRole)] = []
        for name in running {
            guard let role = self.role(name, log: log) else { continue }
            shipping.append((name, role))
        }
        // Streams of namespaces this node no longer owns with followers are forgotten (the running
        // ones' roles were just read).
        let shipped = Set(shipping.map(\.0))
        let kept = self.streams.withLock { Set($0.keys) }.filter {
            shipped.contains($0) || self.role($0, log: log) != nil
        }
        self.streams.withLock { $0 = $0.filter { kept.contains($0.key) } }
        await withTaskGroup(of: Void.self) { group in
            for (name, role) in shipping {
                group.addTask { await self.locks.withLock(name) { await self.ship(name, role) } }
            }
        }
        let lag = self.streams.withLock { streams in
            streams.values.flatMap { stream in stream.copies.values.map { Self.lag(stream.tail, $0) ?? 0 } }.max() ?? 0
        }
        self.metrics.replicationLagBytes.set(Double(lag))
    }

    /// Each follower's lag behind the owner's committed end, in WAL bytes, as last known (nil: its
    /// copy is not known, or is of another generation).
    func lag(_ name: String) -> [String: Int?] {
        self.streams.withLock { streams in
            guard let stream = streams[name] else { return [:] }
            return stream.copies.mapValues { Self.lag(stream.tail, $0) }
        }
    }

    static func lag(_ tail: WALTail, _ copy: ShipmentPlan.Copy) -> Int? {
        guard copy.position.generation == tail.position.generation else { return nil }
        return max(tail.position.offset - copy.position.offset, 0)
    }

    /// Whether `name` is owned here with followers (its checkpoints ship first).
    func hasFollowers(_ name: String) -> Bool {
        guard let log = self.environment.log() else { return false }
        return self.role(name, log: log) != nil
    }

    enum CheckpointReadiness: Sendable, Equatable {
        /// Nothing to ship: checkpoint as without replication.
        case noFollowers
        /// Every reachable follower holds the WAL up to here: retire exactly this.
        case shipped(WALPosition)
        /// A reachable follower does not hold it yet: try again later.
        case behind
    }

    /// Ships `name` to every follower up to its committed end, and says whether each reachable
    /// follower holds it. Called with the namespace's lock held (`locks`). A follower that cannot
    /// be reached does not hold a checkpoint back (its copy is continued or copied whole later);
    /// one that answers and refuses does, until the WAL reaches `overdue` bytes (then it is copied
    /// later rather than let the WAL grow without bound).
    func prepareCheckpoint(_ name: String, overdue: Bool) async -> CheckpointReadiness {
        guard let log = self.environment.log(), let role = self.role(name, log: log) else { return .noFollowers }
        await self.ship(name, role, holding: true)
        guard let stream = self.streams.withLock({ $0[name] }) else { return .behind }
        for follower in role.followers {
            if stream.refused.contains(follower) && !overdue { return .behind }
            guard let copy = stream.copies[follower] else { continue }  // unreachable: not waited for
            if copy.position != stream.tail.position && !overdue { return .behind }
        }
        return .shipped(stream.tail.position)
    }

    /// The checkpoint retired the generation that ended at `end`: followers holding it retire it.
    func checkpointed(_ name: String, end: WALPosition) async {
        let history = FileIdentity(self.environment.files.livePath(name, .history))
        self.streams.withLock { streams in
            streams[name]?.retired = end.generation == nil ? nil : ShipmentPlan.Retired(end: end)
            streams[name]?.retiredFile = history
            streams[name]?.tail = WALTail()
        }
        guard let log = self.environment.log(), let role = self.role(name, log: log) else { return }
        await self.ship(name, role)
    }

    // MARK: - Shipping

    /// What this node ships a namespace as: its owner at an epoch, to followers.
    struct NamespaceEntryRole: Sendable, Equatable {
        var sender: FollowerRules.Sender
        var followers: [String]
        var replicaSet: ReplicaSetKey
    }

    private func role(_ name: String, log: DirectoryLog) -> NamespaceEntryRole? {
        guard let entry = log.entry(name), entry.state == .active, entry.owner == self.environment.nodeID,
            !entry.followers.isEmpty
        else { return nil }
        return NamespaceEntryRole(
            sender: FollowerRules.Sender(
                node: self.environment.nodeID,
                epoch: entry.epoch,
                createdAt: entry.createdAt,
                directoryIndex: log.observedIndex
            ),
            followers: entry.followers,
            replicaSet: ReplicaSetKey(epoch: entry.epoch, createdAt: entry.createdAt, isrVersion: entry.isrVersion)
        )
    }

    /// One pass for `name` (its lock held): the WAL's committed end and the history read again,
    /// then one step for every follower. During a checkpoint's hold (`holding`) calls are short and
    /// nothing is copied whole: requests wait meanwhile.
    private func ship(_ name: String, _ role: NamespaceEntryRole, holding: Bool = false) async {
        let files = self.environment.files
        let previous = self.streams.withLock { $0[name] } ?? Stream()
        let refreshed = try? await BlockingIO.run { () throws(NodeError) -> Stream in
            var stream = previous
            // What was learned of the copies under another replica set (or incarnation) is void.
            if stream.replicaSet != role.replicaSet {
                stream.copies = [:]
                stream.since = [:]
                stream.refused = []
                stream.replicaSet = role.replicaSet
            }
            let wal = files.livePath(name, .wal)
            stream.tail.advance(size: NamespaceFiles.size(wal)) { offset, count in
                ReplicaCopies.read(wal, at: offset, count: count)
            }
            // The history changes exactly when the database file does: its digest is read again
            // whenever the file is another, and a retirement recorded before that is void (a
            // checkpoint whose answer was lost, or one SQLite could not reset).
            let path = files.livePath(name, .history)
            let history = FileIdentity(path)
            if stream.base == nil || history != stream.baseFile {
                stream.base = ReplicaCopies.digest(ReplicaCopies.read(path, at: 0, count: Int.max))
                stream.baseFile = history
                guard FileIdentity(path) == history else {
                    stream.base = nil  // it changed while being read: next time
                    return stream
                }
            }
            if history != stream.retiredFile { stream.retired = nil }
            return stream
        }
        guard let refreshed else { return }
        self.streams.withLock { $0[name] = refreshed }
        await withTaskGroup(of: Void.self) { group in
            for follower in role.followers {
                group.addTask { await self.ship(name, to: follower, role.sender, holding: holding) }
            }
        }
    }

    /// One step for one follower (its lock is the namespace's, held by the caller).
    private func ship(_ name: String, to follower: String, _ sender: FollowerRules.Sender, holding: Bool) async {
        guard let stream = self.streams.withLock({ $0[name] }), let base = stream.base else { return }
        let timeout: Duration = holding ? .seconds(1) : .seconds(60)
        if let retryAt = stream.retryAt[follower], ContinuousClock.now < retryAt { return }
        guard let address = self.environment.peerAddress(follower) else { return }
        var copy = stream.copies[follower]
        if copy == nil {
            copy = await self.call(.GET, name, follower, address, "", bytes: nil, headers: [], timeout: timeout)
            guard copy != nil else { return }
        }
        guard let copy else { return }
        var plan = ShipmentPlan.next(tail: stream.tail, base: base, retired: stream.retired, copy: copy)
        // One transaction larger than a follower takes in one append is copied instead.
        if case .append(let from) = plan,
            Self.shipmentEnd(stream.tail, from: from) - from > ShipmentMessages.appendReceiveLimit
        {
            plan = .install
        }
        let files = self.environment.files
        let tail = stream.tail
        switch plan {
        case .upToDate:
            return
        case .append(let from):
            let end = Self.shipmentEnd(tail, from: from)
            let wal = files.livePath(name, .wal)
            guard let bytes = try? await BlockingIO.run({ ReplicaCopies.read(wal, at: from, count: end - from) }),
                bytes.count == end - from
            else { return }
            let previous =
                from == 0
                ? WALPosition.empty
                : WALPosition(generation: tail.position.generation, offset: from, checksum: tail.commits[from] ?? .zero)
            _ = await self.call(
                .POST,
                name,
                follower,
                address,
                "/append",
                bytes: bytes,
                headers: ShipmentMessages.headers(
                    sender: sender,
                    expecting: ShipmentPlan.Copy(position: previous, base: copy.base)
                ),
                timeout: timeout
            )
            self.metrics.replicationShippedBytes.increment(by: Int64(bytes.count))
        case .retire:
            // The history the checkpoint left, and only that one: read while the file is still it.
            let path = files.livePath(name, .history)
            let left = stream.retiredFile
            guard stream.retired != nil, left != nil,
                let history = try? await BlockingIO.run({ () throws(NodeError) -> [UInt8]? in
                    guard FileIdentity(path) == left else { return nil }
                    let bytes = ReplicaCopies.read(path, at: 0, count: Int.max)
                    return FileIdentity(path) == left ? bytes : nil
                })
            else { return }
            _ = await self.call(
                .POST,
                name,
                follower,
                address,
                "/retire",
                bytes: history,
                headers: ShipmentMessages.headers(sender: sender, expecting: copy),
                timeout: timeout
            )
        case .install:
            // Not while a checkpoint holds every request: after it.
            if holding { return }
            // The database file changes only at a checkpoint, which takes this lock; the history
            // must be the one the plan saw, and the WAL bytes read must end where its tail does.
            let end = tail.position.offset
            let since = self.streams.withLock { $0[name]?.since[follower] }  // set by the GET above
            let historyPath = files.livePath(name, .history)
            let seen = stream.baseFile
            guard
                let parts = try? await BlockingIO.run({ () throws(NodeError) -> [[UInt8]?] in
                    guard FileIdentity(historyPath) == seen else { return [] }
                    let database = files.livePath(name, .db)
                    var delta: [UInt8]?
                    if let since { delta = try Cluster.readDatabaseDelta(database, since: since) }
                    let parts = [
                        delta, delta == nil ? ReplicaCopies.read(database, at: 0, count: Int.max) : nil,
                        ReplicaCopies.read(files.livePath(name, .wal), at: 0, count: end),
                        ReplicaCopies.read(historyPath, at: 0, count: Int.max),
                    ]
                    return FileIdentity(historyPath) == seen ? parts : []
                }), parts.count == 4, let wal = parts[2], let history = parts[3], wal.count == end,
                WALTail(wal: wal[...]).position == tail.position
            else { return }
            let delta = parts[0]
            let first = delta ?? parts[1] ?? []
            var headers = ShipmentMessages.headers(sender: sender, expecting: copy)
            headers.append((ShipmentMessages.installSizes.rawName, "\(first.count),\(wal.count),\(history.count)"))
            if delta != nil { headers.append((ShipmentMessages.installMode.rawName, "delta")) }
            self.logger.info(
                "copying a namespace to its follower",
                metadata: [
                    "namespace": "\(name)", "replication.follower": "\(follower)",
                    "replication.bytes": "\(first.count + wal.count + history.count)",
                    "replication.delta": "\(delta != nil)", "replication.since": "\(since.map(\.description) ?? "-")",
                ]
            )
            _ = await self.call(
                .POST,
                name,
                follower,
                address,
                "/install",
                bytes: first + wal + history,
                headers: headers,
                timeout: timeout
            )
            self.metrics.replicationInstalls.increment()
        }
    }

    /// Where a shipment from `from` ends: the last commit within the size limit, or the first
    /// commit after `from` when one transaction alone is larger.
    static func shipmentEnd(_ tail: WALTail, from: Int) -> Int {
        let limit = from + ShipmentMessages.appendLimit
        let ends = tail.commits.keys.filter { $0 > from }
        return ends.filter { $0 <= limit }.max() ?? ends.min() ?? tail.position.offset
    }

    /// One peer call; records the copy the follower answers (or forgets it, to ask again after a
    /// pause, when the call failed).
    @discardableResult
    private func call(
        _ method: HTTPMethod,
        _ name: String,
        _ follower: String,
        _ address: String,
        _ step: String,
        bytes: [UInt8]?,
        headers: [(String, String)],
        timeout: Duration
    ) async -> ShipmentPlan.Copy? {
        let answer = try? await self.environment.peers.send(
            method,
            address,
            "/_peer/v1/replicas/\(name)\(step)",
            bytes: bytes,
            headers: headers,
            timeout: timeout,
            answer: ShipmentMessages.CopyAnswer.self
        )
        let copy = answer?.answer?.copy
        self.streams.withLock { streams in
            if let status = answer?.status, status != 200 {
                streams[name]?.refused.insert(follower)
            } else if answer?.status == 200 {
                streams[name]?.refused.remove(follower)
            }
            if answer?.status == 200, let copy {
                streams[name]?.copies[follower] = copy
                streams[name]?.retryAt[follower] = nil
                if method == .GET {
                    streams[name]?.since[follower] = answer?.answer?.since.flatMap { DatabaseFileDelta.Position($0) }
                }
            } else {
                streams[name]?.copies[follower] = nil
                streams[name]?.retryAt[follower] = .now + Self.retryAfter
            }
        }
        if answer?.status != 200 {
            self.metrics.replicationFailures.increment()
            self.logger.debug(
                "shipment refused or failed",
                metadata: [
                    "namespace": "\(name)", "replication.follower": "\(follower)", "replication.step": "\(step)",
                    "status": "\(answer?.status ?? 0)", "error": "\(answer?.answer?.error ?? "unreachable")",
                ]
            )
        }
        return answer?.status == 200 ? copy : nil
    }
}
