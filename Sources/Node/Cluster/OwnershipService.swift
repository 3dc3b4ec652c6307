import Directory
import Foundation
import Logging
import Ownership
import Synchronization

/// The copying a move needs between nodes; the shell around the ownership machine asks it and
/// reports the outcome back. Implemented over the peer connections.
protocol OwnershipPeers: Sendable {
    /// Has `node` copy `name`'s files while this node still serves it.
    func precopy(_ name: String, to node: String) async -> Bool
    /// Has `node` copy what it lacks of `name`'s sealed files into its staging for `version`,
    /// verified against `digests` and durable there. True once it confirmed.
    func transfer(
        _ name: String,
        to node: String,
        _ version: OwnershipMachine.Version,
        digests: [NamespaceFiles.Kind: NamespaceFiles.Digest]
    ) async -> Bool
}

/// The node's side of ownership: `OwnershipMachine` (every rule) driven by the directory as this
/// node applies it, by requests and by the outcomes of its actions, which this shell carries out.
///
/// The machine's contract holds because every input for a namespace runs in that namespace's lane
/// together with the durable part of the actions it returns (records, files moved into place);
/// actions that wait on the network or the log run outside it and report back through the lane.
/// A proposal never runs inside a lane: its answer waits for the local application, which needs it.
final class OwnershipService: Sendable {
    typealias Version = OwnershipMachine.Version

    let nodeID: String
    let log: DirectoryLog
    let registry: NamespaceRegistry
    let files: NamespaceFiles
    let archives: ArchiveStore
    let supervisor: Supervisor
    let peers: (any OwnershipPeers)?
    let metrics: NodeMetrics
    let logger: Logger
    private let machine: Mutex<OwnershipMachine>
    private let lanes = KeyedLock()
    private let stagingWriters = KeyedLock()
    /// Copies found without a row (files of an earlier release), recorded by `start`.
    private let adopted: [String: OwnershipMachine.Copy]
    /// Namespaces of an earlier release the log does not name as this node's (its clustered nodes
    /// kept them only in their registries): created in the log as owned here, then held; refused
    /// meanwhile.
    private let unlogged: Mutex<Set<String>>
    /// Imports whose refusal was logged once.
    private let refusalsLogged = Mutex<Set<String>>([])
    private let waiters = Mutex<[String: [UUID: CheckedContinuation<Void, Never>]]>([:])
    /// Where each namespace archived here went, until the archive's requester takes it.
    private let archiveFolders = Mutex<[String: String]>([:])
    private let moves = Mutex<Set<String>>([])
    /// Consecutive failed moves of each namespace and when the next may start.
    private let failedMoves = Mutex<[String: (count: Int, retryAt: ContinuousClock.Instant)]>([:])
    /// The fence each namespace's drain timer belongs to (the last one armed counts).
    private let drainTimers = Mutex<[String: UInt64]>([:])
    /// When each move in progress fenced its namespace (for the fenced-time histogram).
    private let fencedAt = Mutex<[String: ContinuousClock.Instant]>([:])
    /// How long a namespace may drain its requests before a move or an archive goes on without them.
    let drainTimeout: Duration

    /// Loads what this node holds and the directory as applied so far. Call `start` next (and
    /// `attach` the log's observer to `applied` before the log applies anything new).
    init(
        nodeID: String,
        log: DirectoryLog,
        registry: NamespaceRegistry,
        files: NamespaceFiles,
        archives: ArchiveStore,
        supervisor: Supervisor,
        peers: (any OwnershipPeers)?,
        drainTimeout: Duration,
        metrics: NodeMetrics,
        logger: Logger
    ) throws(NodeError) {
        self.nodeID = nodeID
        self.log = log
        self.registry = registry
        self.files = files
        self.archives = archives
        self.supervisor = supervisor
        self.peers = peers
        self.drainTimeout = drainTimeout
        self.metrics = metrics
        self.logger = logger
        var copies = try registry.copies()
        let staged = files.stagedVersions()
        // The machine needs the entries of what this node owns or has files of, not the whole directory.
        var directory = log.entries(Set(copies.keys).union(staged.keys))
        for entry in try log.owned(by: nodeID) { directory[entry.name] = entry }
        let records = registry.all()
        let adopted = Self.unrecordedCopies(
            records: records,
            recorded: copies,
            files: files,
            directory: directory,
            node: nodeID
        )
        copies.merge(adopted) { recorded, _ in recorded }
        self.adopted = adopted
        self.unlogged = Mutex(
            Set(records.map(\.name).filter { copies[$0] == nil })
        )
        self.machine = Mutex(
            OwnershipMachine(node: nodeID, copies: copies, staged: staged, directory: directory)
        )
    }

    /// Namespaces a node of an earlier release (before copies were recorded) serves: a registry
    /// record with files here, that the log says this node owns and that is active. Everything
    /// else of this release records its copy in the same transaction as its record.
    private static func unrecordedCopies(
        records: [NamespaceRecord],
        recorded: [String: OwnershipMachine.Copy],
        files: NamespaceFiles,
        directory: [String: NamespaceEntry],
        node: String
    ) -> [String: OwnershipMachine.Copy] {
        var adopted: [String: OwnershipMachine.Copy] = [:]
        for record in records where recorded[record.name] == nil {
            guard let entry = directory[record.name], entry.owner == node, entry.state == .active,
                entry.createdAt == record.incarnation,
                FileManager.default.fileExists(atPath: files.livePath(record.name, .db))
            else { continue }
            adopted[record.name] = .held(Version(entry))
        }
        return adopted
    }

    /// Finishes what a crash interrupted (reclaims, archives, installs).
    func start() async {
        for (name, copy) in self.adopted.sorted(by: { $0.key < $1.key }) {
            guard let record = self.registry.record(name) else { continue }
            do {
                try await self.registry.setCopy(copy, record: record)
                self.logger.notice(
                    "namespace files of an earlier release adopted as this node's copy",
                    metadata: ["namespace": "\(name)", "epoch": "\(copy.version.epoch)"]
                )
            } catch {
                self.logger.error(
                    "cannot record an adopted copy; adopting it again at the next start",
                    metadata: ["namespace": "\(name)", "error": "\(error)"]
                )
            }
        }
        let actions = self.machine.withLock { $0.start() }
        let byName = Dictionary(grouping: actions, by: Self.name(of:))
        for (name, actions) in byName.sorted(by: { $0.key < $1.key }) {
            await self.lanes.withLock(name) { await self.perform(actions) }
        }
        if !self.unlogged.withLock({ $0.isEmpty }) { Task { await self.importUnlogged() } }
        // Metadata changed while this node was down (lock, TTL) reaches the records it serves.
        for name in self.registry.all().map(\.name) {
            guard let entry = self.log.entry(name) else { continue }
            await self.lanes.withLock(name) { await self.mirrorMetadata(entry) }
        }
    }

    /// Whether `name` is a namespace of an earlier release still being created in the log.
    func isImporting(_ name: String) -> Bool { self.unlogged.withLock { $0.contains(name) } }

    /// Creates the earlier release's namespaces in the log as owned here (retrying until the log
    /// decides each): applied, the machine provisions them over their files; a name the log gave
    /// another incarnation meanwhile keeps its files in the archive, never served or deleted.
    private func importUnlogged() async {
        var attempt = 0
        while true {
            let names = self.unlogged.withLock { $0.sorted() }
            guard !names.isEmpty else { return }
            for start in stride(from: 0, to: names.count, by: 500) {
                let records = names[start..<min(start + 500, names.count)].compactMap { self.registry.record($0) }
                let outcomes: [DirectoryOutcome]
                do {
                    outcomes = try await self.log.propose(
                        records.map { DirectoryService.creation(of: $0, owner: self.nodeID) }
                    )
                } catch {
                    if attempt % 30 == 0 {
                        self.logger.warning(
                            "cannot import namespaces of an earlier release into the cluster log yet; retrying",
                            metadata: ["error": "\(error.message)", "namespaces": "\(names.count)"]
                        )
                    }
                    break
                }
                for (record, outcome) in zip(records, outcomes) { await self.imported(record, outcome) }
            }
            for name in names where self.registry.record(name) == nil {
                _ = self.unlogged.withLock { $0.remove(name) }
            }
            attempt += 1
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func imported(_ record: NamespaceRecord, _ outcome: DirectoryOutcome) async {
        let name = record.name
        let entry = self.log.entry(name)
        if let entry, entry.owner == self.nodeID, entry.createdAt == record.incarnation {
            _ = self.unlogged.withLock { $0.remove(name) }
            self.logger.notice(
                "namespace of an earlier release imported into the cluster log",
                metadata: ["namespace": "\(name)"]
            )
            return
        }
        guard case .refused(.namespaceExists) = outcome else {
            if case .refused(let refusal) = outcome, self.refusalsLogged.withLock({ $0.insert(name).inserted }) {
                self.logger.warning(
                    "the cluster log refused importing a namespace of an earlier release; retrying",
                    metadata: ["namespace": "\(name)", "refusal": "\(refusal)"]
                )
            }
            return
        }
        guard self.registry.copy(name) == nil else {
            // Held at the log's version already (a move brought it here): nothing left to import.
            _ = self.unlogged.withLock { $0.remove(name) }
            return
        }
        await self.lanes.withLock(name) {
            let folder = try? self.archives.archiveLeftovers(
                name: name,
                databasePath: self.files.configuration.databasePath(name),
                now: NamespaceService.nowMilliseconds()
            )
            _ = try? await self.registry.remove(name)
            _ = self.unlogged.withLock { $0.remove(name) }
            self.logger.error(
                "a namespace of an earlier release exists in the cluster log as another; its files here were archived",
                metadata: ["namespace": "\(name)", "archive": "\(folder.flatMap { $0 } ?? "none")"]
            )
        }
    }

    // MARK: - Inputs

    /// The directory entries of `names` changed (the log's observer).
    func applied(_ names: Set<String>) async {
        let created = names.filter(self.isNewHere)
        if !created.isEmpty {
            await self.lanes.withLocks(created) { await self.provisionCreated(created.sorted()) }
        }
        for name in names.subtracting(created).sorted() {
            await self.lanes.withLock(name) {
                let entry = self.log.entry(name)
                await self.perform(self.machine.withLock { $0.applied(name, entry) }, after: entry)
            }
        }
    }

    /// Carries out what an applied entry asked for, then keeps the record's metadata in line.
    private func perform(_ actions: [OwnershipMachine.Action], after entry: NamespaceEntry?) async {
        await self.perform(actions)
        guard let entry else { return }
        await self.mirrorMetadata(entry)
        if entry.state == .archiving && entry.owner == self.nodeID { self.armDrainTimer(entry.name) }
    }

    /// Whether `name` was just created as this node's and nothing of it is here: then all it
    /// needs is its copy recorded, which a batch of such namespaces does in one transaction.
    private func isNewHere(_ name: String) -> Bool {
        guard let entry = self.log.entry(name) else { return false }
        return entry.owner == self.nodeID && entry.epoch == 1 && entry.state == .active
            && self.registry.record(name) == nil && self.registry.copy(name) == nil
    }

    /// Applies the entries of namespaces created as this node's (their lanes held): the machine's
    /// fresh provisions are recorded together; anything else is carried out as usual.
    private func provisionCreated(_ names: [String]) async {
        var provisions: [(OwnershipMachine.Copy, NamespaceRecord)] = []
        for name in names {
            let entry = self.log.entry(name)
            let actions = self.machine.withLock { $0.applied(name, entry) }
            guard actions.count == 2, case .drop(name, keeping: nil) = actions[0],
                case .provision(name, let version) = actions[1], let record = self.gainedRecord(name)
            else {
                await self.perform(actions, after: entry)
                continue
            }
            // The drop finds nothing to forget (no registry write); the hold is batched below.
            await self.drop(name, keeping: nil)
            provisions.append((.held(version), record))
        }
        guard !provisions.isEmpty else { return }
        // Nothing serves them until the copies are recorded.
        await self.retried("cannot record held copies", provisions[0].1.name) { () async throws(NodeError) in
            try await self.registry.setCopies(provisions)
        }
    }

    /// Whether a request for `name` may run here now; `.serve` must be paired with `finished`.
    /// Waits (up to `timeout`) while the namespace moves or settles.
    func admit(_ name: String, timeout: Duration) async -> OwnershipMachine.Admission {
        let deadline = ContinuousClock.now + timeout
        while true {
            let admission = await self.lanes.withLock(name) { () -> OwnershipMachine.Admission in
                let entry = self.log.entry(name)
                return self.machine.withLock { $0.admit(name, applied: entry) }
            }
            guard admission == .unavailable(.moving), ContinuousClock.now < deadline else { return admission }
            await self.waitForRelease(name, until: deadline)
        }
    }

    /// What `admit` would answer now, without admitting or waiting.
    func admission(_ name: String) -> OwnershipMachine.Admission {
        let entry = self.log.entry(name)
        return self.machine.withLock { $0.admission(name, applied: entry) }
    }

    /// A request admitted by `admit` ended (callable from synchronous code).
    func finished(_ name: String) {
        let actions = self.machine.withLock { $0.finished(name) }
        guard !actions.isEmpty else { return }
        Task { await self.lanes.withLock(name) { await self.perform(actions) } }
    }

    /// Moves `name` to `node` when this node serves it and does nothing else with it. True when the
    /// move started.
    func startMove(_ name: String, to node: String, ignoringBackoff: Bool = false) async -> Bool {
        if !ignoringBackoff, let retry = self.failedMoves.withLock({ $0[name]?.retryAt }), retry > .now {
            return false
        }
        return await self.lanes.withLock(name) { () async -> Bool in
            let actions = self.machine.withLock { $0.startMove(name, to: node) }
            guard !actions.isEmpty else { return false }
            self.moves.withLock { _ = $0.insert(name) }
            await self.perform(actions)
            return true
        }
    }

    /// A move of `name` failed: the next attempt waits (5 s, doubling up to 5 min), so a target
    /// that keeps refusing does not have the namespace fenced every few seconds.
    private func moveFailed(_ name: String) {
        self.metrics.handoffsFailed.increment()
        self.failedMoves.withLock { failed in
            let count = (failed[name]?.count ?? 0) + 1
            let delay = Duration.seconds(5 * (1 << min(count - 1, 6)))
            failed[name] = (count, .now + min(delay, .seconds(300)))
        }
    }

    /// Moves started here and not settled yet.
    var movesInProgress: Int { self.moves.withLock { $0.count } }

    /// Archives `name` through the log when this node serves it; waits until the directory no
    /// longer has it (or `timeout`). True when it is gone.
    func archive(_ name: String, timeout: Duration) async -> Bool {
        await self.input(name) { $0.startArchive(name) }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if self.log.entry(name) == nil { return true }
            await self.waitForRelease(name, until: min(deadline, .now + .milliseconds(200)))
        }
        return self.log.entry(name) == nil
    }

    /// The archive folder of the last archive of `name` here, once.
    func takeArchiveFolder(_ name: String) -> String? { self.archiveFolders.withLock { $0.removeValue(forKey: name) } }

    /// Whether this node takes a transfer of `name` at `version` into its staging.
    func acceptsTransfer(_ name: String, _ version: Version) -> Bool {
        self.acceptsTransfer(name, version, applied: self.log.entry(name))
    }

    /// The same, with the directory entry read by the caller (one read for a check and the input
    /// that follows it: the log may apply more in between, and both must judge the same entry).
    private func acceptsTransfer(_ name: String, _ version: Version, applied entry: NamespaceEntry?) -> Bool {
        // Files of an earlier release still being imported are never written over.
        !self.isImporting(name) && self.machine.withLock { $0.acceptsTransfer(name, version, applied: entry) }
    }

    /// Labels a transfer as staged for `version` when the machine still takes it and the staged
    /// files still match `expected` (checked again here, where nothing else writes them). True when
    /// it was labelled.
    func staged(
        _ name: String,
        _ version: Version,
        expected: [NamespaceFiles.Kind: NamespaceFiles.Digest]
    ) async -> Bool {
        await self.lanes.withLock(name) { () async -> Bool in
            // Judged on one entry: if the log moves on meanwhile, applying it settles the staging.
            let entry = self.log.entry(name)
            guard self.acceptsTransfer(name, version, applied: entry) else { return false }
            for (kind, want) in expected {
                let path = self.files.stagingPath(name, kind)
                let digest = try? await BlockingIO.run { () throws(NodeError) in
                    do { return try NamespaceFiles.digest(path) } catch { throw NodeError.io("\(error)") }
                }
                guard digest == want else {
                    self.logger.error(
                        "a staged copy changed after it was verified; not labelling it",
                        metadata: ["namespace": "\(name)", "file": "\(kind.rawValue)"]
                    )
                    return false
                }
            }
            do {
                try self.files.markStaged(name, version)
            } catch {
                self.logger.error(
                    "cannot label a staged copy",
                    metadata: ["namespace": "\(name)", "error": "\(error)"]
                )
                return false
            }
            let actions = self.machine.withLock { $0.staged(name, version, applied: entry) }
            await self.perform(actions)
            return true
        }
    }

    /// One writer at a time into each namespace's staging (a precopy or a transfer, each holding
    /// it for its whole copy): a late handler of an earlier attempt waits rather than writing under
    /// a newer one.
    func withStaging<T>(_ name: String, _ body: () async throws(NodeError) -> T) async throws(NodeError) -> T {
        try await self.stagingWriters.withLock(name, body)
    }

    /// Whether a precopy may write into `name`'s staging: not while a verified copy is labelled
    /// there (only the machine, applying the log, installs or discards it). Call within
    /// `withStaging`.
    func precopyMayWrite(_ name: String) -> Bool { self.files.stagedVersion(name) == nil && !self.isImporting(name) }

    /// A transfer of `version` begins writing into `name`'s staging (within `withStaging`): false
    /// when the machine does not take it; a label found there is of an earlier attempt the log
    /// already superseded, and is removed before its files change.
    func transferStarts(_ name: String, _ version: Version) async -> Bool {
        await self.lanes.withLock(name) { () -> Bool in
            guard self.acceptsTransfer(name, version) else { return false }
            self.files.unmarkStaged(name)
            return true
        }
    }

    private func input(_ name: String, _ step: @Sendable (inout OwnershipMachine) -> [OwnershipMachine.Action]) async {
        await self.lanes.withLock(name) {
            let actions = self.machine.withLock { step(&$0) }
            await self.perform(actions)
        }
    }

    // MARK: - Actions

    private static func name(of action: OwnershipMachine.Action) -> String {
        switch action {
        case .precopy(let name, _), .seal(let name, _), .transfer(let name, _, _), .propose(let name, _),
            .unseal(let name, _), .install(let name, _), .provision(let name, _), .drop(let name, _),
            .archiveFiles(let name), .release(let name):
            name
        }
    }

    /// Carries out `actions` (inside their namespace's lane): the durable ones here, the waiting
    /// ones in tasks that report back.
    private func perform(_ actions: [OwnershipMachine.Action]) async {
        for action in actions {
            switch action {
            case .precopy(let name, let target):
                Task {
                    let succeeded = await self.peers?.precopy(name, to: target) ?? false
                    await self.input(name) { $0.precopied(name, succeeded: succeeded) }
                    if succeeded {
                        self.fencedAt.withLock { $0[name] = .now }
                        self.armDrainTimer(name)
                    } else {
                        self.moves.withLock { _ = $0.remove(name) }
                        self.moveFailed(name)
                    }
                }
            case .seal(let name, let version):
                Task { await self.seal(name, version) }
            case .transfer(let name, let target, let version):
                Task {
                    let succeeded = await self.transfer(name, to: target, version)
                    await self.input(name) { $0.transferred(name, succeeded: succeeded) }
                }
            case .propose(let name, let command):
                Task {
                    let outcome = await self.propose(command)
                    await self.input(name) { $0.answered(name, outcome) }
                }
            case .unseal(let name, let version), .install(let name, let version), .provision(let name, let version):
                await self.hold(name, version, action: action)
            case .drop(let name, let keeping):
                await self.drop(name, keeping: keeping)
            case .archiveFiles(let name):
                Task { await self.archiveFiles(name) }
            case .release(let name):
                self.release(name)
            }
        }
    }

    /// Gives the requests in flight when `name` was fenced a deadline; past it the move or archive
    /// goes on without them (a timer from an earlier fence does nothing once that drain is over).
    private func armDrainTimer(_ name: String) {
        let fence = self.drainTimers.withLock { timers -> UInt64 in
            timers[name, default: 0] &+= 1
            return timers[name]!
        }
        Task {
            try? await Task.sleep(for: self.drainTimeout)
            // Only the timer of the latest fence: an earlier one must not cut a later drain short.
            guard self.drainTimers.withLock({ $0[name] == fence }) else { return }
            await self.input(name) { $0.drainTimedOut(name) }
        }
    }

    /// Stops the backend and records the files sealed at `version`, retrying a failed write (the
    /// namespace stays fenced meanwhile).
    private func seal(_ name: String, _ version: Version) async {
        await self.supervisor.stop(name, hold: true)
        await self.retried("cannot seal for a move", name) { () async throws(NodeError) in
            // In the lane: a metadata mirror must not write the record back after it went.
            try await self.lanes.withLock(name) { () async throws(NodeError) in
                guard let record = self.registry.record(name) ?? self.record(name) else {
                    throw NodeError.io("no record")
                }
                try await self.registry.setCopy(.sealed(version), record: record)
            }
        }
        await self.supervisor.unhold(name)
        await self.input(name) { $0.sealed(name) }
    }

    private func transfer(_ name: String, to target: String, _ version: Version) async -> Bool {
        guard let peers else { return false }
        let files = self.files
        guard
            let digests = try? await BlockingIO.run({ () throws(NodeError) in
                do { return try files.liveDigests(name) } catch { throw NodeError.io("\(error)") }
            })
        else { return false }
        return await peers.transfer(name, to: target, version, digests: digests)
    }

    /// Proposes `command`; an unknown outcome is reported after a pause, since the machine answers
    /// it with another proposal (a reclaim) and a log without a leader would otherwise spin.
    private func propose(_ command: DirectoryCommand) async -> OwnershipMachine.Outcome {
        do {
            let outcomes = try await self.log.propose([command])
            return outcomes.first == .applied ? .applied : .refused
        } catch {
            self.logger.warning(
                "a proposal's outcome is unknown; the log settles it",
                metadata: ["error": "\(error.message)"]
            )
            try? await Task.sleep(for: .seconds(1))
            return .unknown
        }
    }

    /// Records the files of `version` as held (after moving staged files into place for an
    /// install), with the entry's metadata.
    private func hold(_ name: String, _ version: Version, action: OwnershipMachine.Action) async {
        var installing = false
        if case .install = action { installing = true }
        if installing {
            do {
                try self.files.installStaged(name)
            } catch {
                // The machine counts it held, but without a record nothing serves it: refused
                // (never served empty) until an operator looks; the staging stays for inspection.
                self.logger.critical(
                    "cannot install a moved namespace's files; it is refused",
                    metadata: ["namespace": "\(name)", "error": "\(error)"]
                )
                return
            }
        }
        // A provision adopts what is at the path: its creator archived leftovers before proposing
        // it, and a restore put its database there.
        guard let record = self.gainedRecord(name) else { return }
        // Nothing serves it until the copy is recorded.
        await self.retried("cannot record a held copy", name) { () async throws(NodeError) in
            try await self.registry.setCopy(.held(version), record: record)
        }
        guard installing else { return }
        self.files.discardStaging(name)
        self.metrics.handoffsIn.increment()
        self.logger.info("namespace moved here", metadata: ["namespace": "\(name)", "epoch": "\(version.epoch)"])
    }

    /// Deletes this node's files of `name` (owned elsewhere or gone) and its staging other than
    /// `keeping`.
    private func drop(_ name: String, keeping: Version?) async {
        await self.supervisor.stop(name, hold: true)
        let copy = self.registry.copy(name)
        if copy != nil { self.files.removeLive(name) }
        if case .sealed(let version) = copy, let entry = self.log.entry(name),
            entry.owner != self.nodeID, entry.createdAt == version.createdAt
        {
            // The move out applied: the namespace lives on its new owner now.
            self.metrics.handoffsOut.increment()
            self.failedMoves.withLock { _ = $0.removeValue(forKey: name) }
            if let fenced = self.fencedAt.withLock({ $0.removeValue(forKey: name) }) {
                self.metrics.handoffDuration.record(ContinuousClock.now - fenced)
            }
            self.logger.info(
                "ownership changed",
                metadata: [
                    "namespace": "\(name)", "handoff.from": "\(self.nodeID)", "handoff.to": "\(entry.owner)",
                    "epoch": "\(entry.epoch)",
                ]
            )
        }
        if keeping == nil || self.files.stagedVersion(name) != keeping { self.files.discardStaging(name) }
        // A namespace created here has nothing to forget: no write (and no fsync) in the apply path.
        if copy != nil || self.registry.record(name) != nil {
            do {
                try await self.registry.dropCopy(name)
            } catch {
                self.logger.error(
                    "cannot forget a dropped copy",
                    metadata: ["namespace": "\(name)", "error": "\(error)"]
                )
            }
        }
        await self.supervisor.unhold(name)
    }

    private func archiveFiles(_ name: String) async {
        await self.supervisor.stop(name, hold: true)
        await self.retried("cannot archive", name) { () async throws(NodeError) in
            let folder = try self.archives.archive(
                name: name,
                files: NamespaceFiles.allPaths(databasePath: self.files.configuration.databasePath(name)),
                now: NamespaceService.nowMilliseconds()
            )
            try await self.registry.dropCopy(name)
            self.archiveFolders.withLock { $0[name] = folder }
        }
        await self.supervisor.unhold(name)
        await self.input(name) { $0.archived(name) }
    }

    /// Runs a durable step the machine already counts on until it succeeds (the namespace stays
    /// fenced or unserved meanwhile), every second; the first failure and every 30th are logged.
    private func retried(_ failure: String, _ name: String, _ step: () async throws(NodeError) -> Void) async {
        var attempt = 0
        while true {
            do {
                try await step()
                return
            } catch {
                attempt += 1
                if attempt == 1 || attempt % 30 == 0 {
                    self.logger.error(
                        "\(failure); retrying",
                        metadata: ["namespace": "\(name)", "error": "\(error)", "attempt": "\(attempt)"]
                    )
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Keeps the registry record of a namespace held here in line with its entry (lock, TTL).
    private func mirrorMetadata(_ entry: NamespaceEntry) async {
        guard entry.owner == self.nodeID, let existing = self.registry.record(entry.name),
            var record = self.record(entry.name)
        else { return }
        record.lastAccessAt = existing.lastAccessAt
        guard record != existing else { return }
        do {
            try await self.registry.mirror(upserts: [record], removals: [])
        } catch {
            self.logger.error(
                "cannot mirror a directory entry",
                metadata: ["namespace": "\(entry.name)", "error": "\(error)"]
            )
        }
    }

    /// The record of a namespace this node gains (or serves again): idle from now, so GC never
    /// archives it for moving.
    private func gainedRecord(_ name: String) -> NamespaceRecord? {
        guard var record = self.record(name) else { return nil }
        record.lastAccessAt = max(record.createdAt, NamespaceService.nowMilliseconds())
        return record
    }

    /// The registry record the directory entry of `name` describes.
    private func record(_ name: String) -> NamespaceRecord? {
        self.log.entry(name).map(NamespaceRecord.init)
    }

    // MARK: - Waiting requests

    private func release(_ name: String) {
        if self.moves.withLock({ $0.remove(name) }) != nil,
            self.fencedAt.withLock({ $0.removeValue(forKey: name) }) != nil
        {
            // Settled without the move applying here (a reclaim): served again on this node.
            self.moveFailed(name)
        }
        let waiting = self.waiters.withLock { $0.removeValue(forKey: name) } ?? [:]
        for continuation in waiting.values { continuation.resume() }
    }

    private func waitForRelease(_ name: String, until deadline: ContinuousClock.Instant) async {
        let id = UUID()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.waiters.withLock { $0[name, default: [:]][id] = continuation }
            Task {
                try? await Task.sleep(until: deadline)
                let expired = self.waiters.withLock { $0[name]?.removeValue(forKey: id) }
                expired?.resume()
            }
        }
    }
}
