import Foundation
import Logging
import SQLiteSupport
import Synchronization

/// The namespace lifecycle shared by the data and admin ports: registration, auto-provisioning,
/// locking, TTL, deletion into the archive, backups and GC.
public final class NamespaceService: Sendable {
    public let configuration: NodeConfiguration
    public let registry: NamespaceRegistry
    public let supervisor: Supervisor
    public let metrics: NodeMetrics
    let archives: ArchiveStore
    let logger: Logger
    /// The cluster directory of a one-node cluster (which mirrors it into the registry).
    private let oneNodeDirectory: DirectoryService?
    /// A clustered node's directory and ownership machine, once its cluster log is open.
    private let attached = Mutex<(directory: DirectoryService, ownership: OwnershipService)?>(nil)
    /// The cluster directory this node decides through (nil: a clustered node without its log yet).
    var directory: DirectoryService? { self.oneNodeDirectory ?? self.attached.withLock { $0?.directory } }
    /// A clustered node's ownership machine (nil before its log is open, and on a one-node cluster).
    var ownership: OwnershipService? { self.attached.withLock { $0?.ownership } }
    /// Namespaces being deleted or archived: new requests are refused until it is done.
    private let fenced = Mutex<Set<String>>([])
    /// Serialises what changes where a namespace lives: creation, archiving, handoff and install.
    let locks = KeyedLock()

    init(
        configuration: NodeConfiguration,
        registry: NamespaceRegistry,
        supervisor: Supervisor,
        metrics: NodeMetrics,
        logger: Logger,
        directory: DirectoryService? = nil
    ) {
        self.oneNodeDirectory = directory
        self.configuration = configuration
        self.registry = registry
        self.supervisor = supervisor
        self.metrics = metrics
        self.logger = logger
        self.archives = ArchiveStore(directory: configuration.archiveDirectory)
    }

    static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A clustered node's log is open: from now on namespaces are created, archived and changed
    /// through it, and the ownership machine decides what this node holds.
    func attach(directory: DirectoryService, ownership: OwnershipService) {
        self.attached.withLock { $0 = (directory, ownership) }
    }

    func checkNotFenced(_ name: String) throws(NodeError) {
        if self.fenced.withLock({ $0.contains(name) }) || self.directory?.entry(name)?.state == .archiving {
            throw NodeError(.backendUnavailable, "namespace \(name) is being archived", status: 503, retryAfter: 1)
        }
    }

    /// The record for a data request: registers it (origin auto) on first use when allowed.
    func recordForDataRequest(_ name: String) async throws(NodeError) -> NamespaceRecord {
        try self.checkNotFenced(name)
        if let record = self.registry.record(name) { return record }
        guard self.configuration.allowAutoProvision else {
            throw .notFound("namespace \(name) does not exist (auto-provisioning is off)")
        }
        if let record = try await self.register(name, origin: .auto) {
            self.metrics.namespacesCreated.increment()
            self.logger.info("namespace created", metadata: ["namespace": "\(name)", "origin": "auto"])
            return record
        }
        return try self.servedRecord(name)
    }

    /// Registers `name` (the caller holds its lock): through the cluster log when there is one,
    /// else in the registry. Files left at its path are archived first, unless `keepingFiles` (a
    /// restore put them there). Returns the new record, or
    /// nil when the name already exists.
    private func register(
        _ name: String,
        origin: NamespaceOrigin,
        keepingFiles: Bool = false
    ) async throws(NodeError) -> NamespaceRecord? {
        let now = Self.nowMilliseconds()
        try self.requireLogWhenClustered()
        guard let directory else {
            if !keepingFiles && self.registry.record(name) == nil { try self.archiveLeftovers(name) }
            return try await self.registry.create(
                name,
                origin: origin,
                now: now,
                maxNamespaces: self.configuration.maxNamespaces
            )
        }
        if !keepingFiles && directory.entry(name) == nil { try self.archiveLeftovers(name) }
        let created = try await directory.create(
            name,
            origin: origin,
            now: now,
            maxNamespaces: self.configuration.maxNamespaces
        )
        // The mirror into the registry failed once (logged): the directory is the truth, try again.
        if self.registry.record(name) == nil { await directory.remirror(name) }
        return created ? try self.servedRecord(name) : nil
    }

    /// The record of a namespace that exists; an error when this node does not serve it (the
    /// directory names another owner that a one-node cluster cannot reach).
    private func servedRecord(_ name: String) throws(NodeError) -> NamespaceRecord {
        if let record = self.registry.record(name) { return record }
        let owner = self.directory?.entry(name)?.owner ?? "another member"
        throw NodeError(
            .ownerUnavailable,
            "namespace \(name) is owned by \(owner), which is not part of this cluster",
            status: 503,
            retryAfter: 5
        )
    }

    /// `POST /v1/namespaces/:name/create`: registers it (explicit, locked). One node starts its
    /// backend before answering, as the ancestor did; a clustered node answers once the log has
    /// committed it and starts the backend on the first request, so creates are not bound by
    /// process start-up (thousands per second through the log).
    func create(_ name: String) async throws(NodeError) -> NamespaceRecord {
        try self.checkNotFenced(name)
        guard let record = try await self.register(name, origin: .explicit) else {
            throw NodeError(.exists, "namespace \(name) already exists", status: 409)
        }
        self.metrics.namespacesCreated.increment()
        self.logger.info("namespace created", metadata: ["namespace": "\(name)", "origin": "explicit"])
        if !self.configuration.isClustered { await self.warmUp(name) }
        return record
    }

    /// Starts a new namespace's backend once, as the ancestor did, so the first request is warm.
    private func warmUp(_ name: String) async {
        do {
            _ = try await self.supervisor.acquire(name)
            await self.supervisor.release(name)
        } catch {
            self.logger.warning(
                "namespace created but its backend did not start",
                metadata: ["namespace": "\(name)", "error": "\(error)"]
            )
        }
    }

    /// The largest database a restore accepts.
    static let maxRestoreBytes = 1 << 36

    /// `POST /v1/namespaces/:name/restore`: registers `name` (explicit, locked) with the SQLite file at
    /// `file` (a backup, already on this node's disk) as its database. The namespace must not exist;
    /// the file must be a sound SQLite database with 4096-byte pages. Sync clients see a history
    /// they do not know and resynchronise.
    func restore(_ name: String, file: String) async throws(NodeError) -> NamespaceRecord {
        try self.checkNotFenced(name)
        guard self.registry.record(name) == nil, self.directory?.entry(name) == nil else {
            throw NodeError(.exists, "namespace \(name) already exists; delete it before restoring", status: 409)
        }
        let header = FileHandle(forReadingAtPath: file).flatMap { handle in
            defer { try? handle.close() }
            return try? handle.read(upToCount: 100)
        }
        guard let header, header.count == 100, header.prefix(16) == Data("SQLite format 3\0".utf8) else {
            throw .badRequest("the body is not a SQLite database file")
        }
        guard header[16] == 0x10 && header[17] == 0x00 else {
            throw .badRequest("the database must use 4096-byte pages (the sync protocol requires them)")
        }
        try await BlockingIO.run { () throws(NodeError) in
            let check: SQLiteValue?
            do {
                let connection = try SQLiteConnection(path: file, readOnly: true, create: false)
                check = try connection.query("PRAGMA quick_check").first?.first
            } catch {
                throw .badRequest("the database cannot be read: \(error)")
            }
            guard case .text("ok") = check else { throw .badRequest("the database fails quick_check") }
        }
        try self.archiveLeftovers(name)
        let path = self.configuration.databasePath(name)
        let dataDirectory = self.configuration.dataDirectory
        try await BlockingIO.run { () throws(NodeError) in
            do {
                let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
                try handle.synchronize()
                try handle.close()
                try FileManager.default.moveItem(atPath: file, toPath: path)
            } catch {
                throw .io("cannot install the restored database of \(name): \(error.localizedDescription)")
            }
            NamespaceFiles.syncDirectory(dataDirectory)
        }
        let created: NamespaceRecord?
        do {
            created = try await self.register(name, origin: .explicit, keepingFiles: true)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        guard let record = created else {
            throw NodeError(.exists, "namespace \(name) already exists; delete it before restoring", status: 409)
        }
        self.metrics.namespacesCreated.increment()
        self.logger.info("namespace restored", metadata: ["namespace": "\(name)", "origin": "explicit"])
        await self.warmUp(name)
        return record
    }

    /// Before a namespace is registered (its creator holds its lock): files already at its path
    /// belong to no namespace and are archived rather than adopted.
    private func archiveLeftovers(_ name: String) throws(NodeError) {
        guard
            let folder = try self.archives.archiveLeftovers(
                name: name,
                databasePath: self.configuration.databasePath(name),
                now: Self.nowMilliseconds()
            )
        else { return }
        self.logger.warning(
            "files of an unregistered namespace were archived before creating it",
            metadata: ["namespace": "\(name)", "archive": "\(folder)"]
        )
    }

    /// A clustered node changes namespaces only through its cluster log: before the log is open
    /// (and the ownership machine attached) it refuses rather than write its registry alone.
    private func requireLogWhenClustered() throws(NodeError) {
        guard self.configuration.isClustered, self.ownership == nil else { return }
        throw NodeError.noClusterLog
    }

    /// `lock` / `unlock`: through the log when there is one. Returns the updated record.
    func setLocked(_ name: String, _ locked: Bool) async throws(NodeError) -> NamespaceRecord {
        try self.requireLogWhenClustered()
        guard let directory else {
            guard let record = try await self.registry.update(name, { $0.locked = locked }) else {
                throw .notFound("namespace \(name) does not exist")
            }
            return record
        }
        try await directory.setLocked(name, locked)
        return try self.servedRecord(name)
    }

    /// `ttl`: nil clears it. Returns the updated record.
    func setTTL(_ name: String, seconds: Double?) async throws(NodeError) -> NamespaceRecord {
        try self.requireLogWhenClustered()
        guard let directory else {
            guard let record = try await self.registry.update(name, { $0.ttlSeconds = seconds }) else {
                throw .notFound("namespace \(name) does not exist")
            }
            return record
        }
        try await directory.setTTL(name, seconds: seconds)
        return try self.servedRecord(name)
    }

    /// Archives a namespace: fences it, stops its backend, moves its files to the archive and
    /// unregisters it. Returns the archive folder.
    func archive(_ name: String, reason: String) async throws(NodeError) -> String {
        try await self.locks.withLock(name) { () async throws(NodeError) -> String in
            try await self.archiveLocked(name, reason: reason)
        }
    }

    private func archiveLocked(_ name: String, reason: String) async throws(NodeError) -> String {
        if let ownership { return try await self.archiveOwned(name, ownership: ownership, reason: reason) }
        try self.requireLogWhenClustered()
        let claimed = self.fenced.withLock { $0.insert(name).inserted }
        guard claimed else {
            throw NodeError(.backendUnavailable, "namespace \(name) is already being archived", status: 409)
        }
        defer { _ = self.fenced.withLock { $0.remove(name) } }
        guard self.registry.record(name) != nil else { throw .notFound("namespace \(name) does not exist") }
        // In the log first: from here on the namespace is refused everywhere, and a restart finishes
        // the archive rather than serving it again.
        let epoch = try await self.directory?.beginArchive(name)
        // Held stopped until it is unregistered: a request that passed the fence before it was set
        // must neither restart the backend nor recreate the files behind the archive.
        await self.supervisor.stop(name, hold: true)
        let folder: String
        do {
            let base = self.configuration.databasePath(name)
            folder = try self.archives.archive(
                name: name,
                files: NamespaceFiles.allPaths(databasePath: base),
                now: Self.nowMilliseconds()
            )
            if let directory = self.directory, let epoch {
                try await directory.finishArchive(name, epoch: epoch)
            } else {
                try await self.registry.remove(name)
            }
        } catch {
            await self.supervisor.unhold(name)
            throw error
        }
        await self.supervisor.unhold(name)
        self.logger.info(
            "gc archive",
            metadata: ["namespace": "\(name)", "reason": "\(reason)", "archive": "\(folder)"]
        )
        return folder
    }

    /// Archives a namespace of a clustered node: the ownership machine proposes it, drains, moves
    /// the files to the archive and finishes it in the log.
    private func archiveOwned(
        _ name: String,
        ownership: OwnershipService,
        reason: String
    ) async throws(NodeError) -> String {
        guard self.registry.record(name) != nil else { throw .notFound("namespace \(name) does not exist") }
        guard await ownership.archive(name, timeout: .seconds(60)) else {
            throw NodeError(
                .backendUnavailable,
                "namespace \(name) could not be archived now (it is moving, or the cluster log has no quorum); retry",
                status: 503,
                retryAfter: 5
            )
        }
        let folder = ownership.takeArchiveFolder(name) ?? ""
        self.logger.info(
            "gc archive",
            metadata: ["namespace": "\(name)", "reason": "\(reason)", "archive": "\(folder)"]
        )
        return folder
    }

    /// Copies being received (`_state/incoming/<name>/`) whose files have not changed for
    /// `idleSeconds` belong to a move that will not finish: removes them and returns their
    /// names. At start every one is abandoned (a copy never resumes across a restart).
    @discardableResult
    func removeAbandonedCopies(idleSeconds: Double) async -> [String] {
        let files = NamespaceFiles(configuration: self.configuration)
        let cutoff = Date().addingTimeInterval(-idleSeconds)
        var removed: [String] = []
        for name in Self.stagingFolders(files) {
            // Checked and removed as the one writer of the folder: a transfer labelling it meanwhile
            // must not have it deleted under its label.
            let gone: Bool
            if let ownership, NamespaceName.isValid(name) {
                gone =
                    (try? await ownership.withStaging(name) { () -> Bool in
                        Self.removeIfAbandoned(name, files, idleSeconds: idleSeconds, cutoff: cutoff)
                    }) ?? false
            } else {
                gone = Self.removeIfAbandoned(name, files, idleSeconds: idleSeconds, cutoff: cutoff)
            }
            if gone { removed.append(name) }
        }
        self.logRemovedStaging(removed)
        return removed
    }

    /// At start (before anything copies): every unlabelled staging folder is abandoned, since a
    /// copy never resumes across a restart.
    func removeUnlabelledStaging() {
        let files = NamespaceFiles(configuration: self.configuration)
        self.logRemovedStaging(
            Self.stagingFolders(files).filter { Self.removeIfAbandoned($0, files, idleSeconds: 0, cutoff: Date()) }
        )
    }

    private static func stagingFolders(_ files: NamespaceFiles) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: files.stagingRoot)) ?? []
    }

    private func logRemovedStaging(_ removed: [String]) {
        guard !removed.isEmpty else { return }
        self.logger.info("removed abandoned incoming copies", metadata: ["namespaces": "\(removed)"])
    }

    private static func removeIfAbandoned(
        _ name: String,
        _ files: NamespaceFiles,
        idleSeconds: Double,
        cutoff: Date
    ) -> Bool {
        let fm = FileManager.default
        // Labelled with a version: a verified copy a move may still install (the ownership
        // machine drops it once the directory shows it never will).
        if fm.fileExists(atPath: files.stagingMarkerPath(name)) { return false }
        let folder = files.stagingRoot + "/" + name
        let paths = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).map { folder + "/" + $0 } + [folder]
        let newest = paths.compactMap { (try? fm.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }.max()
        guard idleSeconds <= 0 || (newest ?? .distantPast) < cutoff else { return false }
        return (try? fm.removeItem(atPath: folder)) != nil
    }

    /// One GC sweep: archive idle auto-created and TTL-expired namespaces, purge old archives, drop
    /// incoming copies abandoned for an hour.
    func collectGarbage() async {
        await self.removeAbandonedCopies(idleSeconds: 3600)
        let planner = GarbageCollectionPlanner(
            autoIdle: self.configuration.autoIdleDuration,
            archiveRetention: self.configuration.archiveRetention
        )
        for name in self.directory?.interruptedArchives() ?? [] {
            _ = try? await self.archive(name, reason: "archive interrupted earlier")
        }
        let decisions = planner.plan(
            records: self.registry.all(),
            archives: self.archives.list(),
            now: Self.nowMilliseconds()
        )
        for decision in decisions {
            switch decision {
            case .archive(let name, let reason):
                // A request may have touched it since the plan: re-check with fresh metadata.
                guard let record = self.registry.record(name),
                    !planner.plan(records: [record], archives: [], now: Self.nowMilliseconds()).isEmpty
                else { continue }
                do {
                    _ = try await self.archive(name, reason: reason)
                    self.metrics.gcArchived.increment()
                } catch {
                    self.logger.warning(
                        "gc could not archive",
                        metadata: ["namespace": "\(name)", "error": "\(error)"]
                    )
                }
            case .purge(let archive):
                do {
                    try self.archives.purge(archive)
                    self.metrics.gcPurged.increment()
                    self.logger.info("gc purge", metadata: ["archive": "\(archive)"])
                } catch {
                    self.logger.warning("gc could not purge", metadata: ["archive": "\(archive)", "error": "\(error)"])
                }
            }
        }
    }

    /// Writes a transactionally consistent copy of `name`'s database to a temporary file and returns
    /// its path (the caller streams and deletes it).
    ///
    /// `VACUUM INTO` runs on a connection of this process that never checkpoints (auto-checkpoint off,
    /// no checkpoint on close), so the copy cannot disturb the WAL that replicas and clients rely on.
    func backup(_ name: String) async throws(NodeError) -> String {
        try self.checkNotFenced(name)
        guard self.registry.record(name) != nil else { throw .notFound("namespace \(name) does not exist") }
        let source = self.configuration.databasePath(name)
        guard FileManager.default.fileExists(atPath: source) else {
            throw .notFound("namespace \(name) has no database file yet")
        }
        let temporaryDirectory = self.configuration.stateDirectory + "/tmp"
        try? FileManager.default.createDirectory(atPath: temporaryDirectory, withIntermediateDirectories: true)
        let target = "\(temporaryDirectory)/backup-\(name)-\(UUID().uuidString).db"
        try await BlockingIO.run { () throws(NodeError) in
            do {
                let connection = try SQLiteConnection(path: source, create: false, busyTimeoutMilliseconds: 10_000)
                try connection.disableCheckpoints()
                try connection.run("VACUUM INTO ?", [.text(target)])
            } catch {
                try? FileManager.default.removeItem(atPath: target)
                throw NodeError(.io, "backup of \(name) failed: \(error)", status: 500)
            }
        }
        return target
    }
}
