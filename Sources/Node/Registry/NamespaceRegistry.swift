import Foundation
import SQLiteSupport
import Synchronization

/// The namespace registry: metadata of every registered namespace, kept in memory and in a SQLite
/// database under `<data-dir>/_state/` (transactional, survives kill -9).
///
/// `lastAccessAt` changes on every data request, so it is updated in memory and written by
/// `flushAccessTimes()` (debounced by the caller); a crash loses at most one debounce interval of
/// access times, which only makes GC see a slightly older time.
public final class NamespaceRegistry: Sendable {
    /// The state format this build writes. A newer one on disk is refused at startup. 2: the
    /// registry mirrors the cluster log's directory (a build before the log must not write it).
    public static let formatVersion = 2

    struct State {
        var records: [String: NamespaceRecord] = [:]
        var dirtyAccess: Set<String> = []
        /// Raised by every change of the copies (see `copiesVersion`).
        var copiesVersion: UInt64 = 0
    }

    let connection: Mutex<SQLiteConnection>
    /// Serialises changes (taken before `connection`, never while `state` is held).
    private let writer = Mutex(())
    let state: Mutex<State>
    public let path: String

    /// Opens (creating if needed) the registry in `directory`. Throws a clear error for a state
    /// directory written by a newer version or a corrupt database.
    public init(directory: String) throws(NodeError) {
        self.path = directory + "/registry.db"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .io("cannot create state directory \(directory): \(error.localizedDescription)")
        }
        let connection: SQLiteConnection
        var records: [String: NamespaceRecord] = [:]
        do {
            connection = try SQLiteConnection(path: self.path)
            let check = try connection.query("PRAGMA quick_check")
            guard check.count == 1, check[0].first == .text("ok") else {
                throw NodeError(.stateUnreadable, "state database \(self.path) is corrupt (quick_check failed)")
            }
            try connection.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS namespaces(
                    name TEXT PRIMARY KEY,
                    origin TEXT NOT NULL,
                    locked INTEGER NOT NULL,
                    ttl_seconds REAL,
                    created_at INTEGER NOT NULL,
                    last_access_at INTEGER NOT NULL
                );
                CREATE TABLE IF NOT EXISTS copies(
                    name TEXT PRIMARY KEY,
                    created_at INTEGER NOT NULL,
                    epoch INTEGER NOT NULL,
                    sealed INTEGER NOT NULL
                );
                """
            )
            let version = try connection.query("SELECT value FROM meta WHERE key = 'format_version'")
            if case .text(let text)? = version.first?.first {
                guard let found = Int(text) else {
                    throw NodeError(
                        .stateUnreadable,
                        "state database \(self.path) has an unreadable format version '\(text)'"
                    )
                }
                guard found <= Self.formatVersion else {
                    throw NodeError(
                        .stateTooNew,
                        "state directory \(directory) has format \(found), newer than this build's \(Self.formatVersion); run a newer turso-server"
                    )
                }
                if found < Self.formatVersion {
                    try connection.run(
                        "UPDATE meta SET value = ? WHERE key = 'format_version'",
                        [.text(String(Self.formatVersion))]
                    )
                }
            } else {
                try connection.run(
                    "INSERT INTO meta(key, value) VALUES ('format_version', ?)",
                    [.text(String(Self.formatVersion))]
                )
            }
            for row in try connection.query(
                "SELECT name, origin, locked, ttl_seconds, created_at, last_access_at FROM namespaces"
            ) {
                guard case .text(let name) = row[0], case .text(let originText) = row[1],
                    let origin = NamespaceOrigin(rawValue: originText), case .integer(let locked) = row[2],
                    case .integer(let created) = row[4], case .integer(let access) = row[5]
                else {
                    throw NodeError(.stateUnreadable, "state database \(self.path) has a malformed namespace row")
                }
                var record = NamespaceRecord(name: name, origin: origin, createdAt: created)
                record.locked = locked != 0
                if case .real(let ttl) = row[3] { record.ttlSeconds = ttl }
                if case .integer(let ttl) = row[3] { record.ttlSeconds = Double(ttl) }
                record.lastAccessAt = access
                records[name] = record
            }
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError(.stateUnreadable, "cannot open state database \(self.path): \(error)")
        }
        self.connection = Mutex(connection)
        self.state = Mutex(State(records: records))
    }

    public var count: Int { self.state.withLock { $0.records.count } }

    public func record(_ name: String) -> NamespaceRecord? { self.state.withLock { $0.records[name] } }

    public func all() -> [NamespaceRecord] {
        self.state.withLock { Array($0.records.values) }.sorted { $0.name < $1.name }
    }

    /// Registers a namespace unless it exists or the cap is reached. Returns the new record, or nil
    /// when it already existed.
    public func create(
        _ name: String,
        origin: NamespaceOrigin,
        now: Int64,
        maxNamespaces: Int
    ) async throws(NodeError) -> NamespaceRecord? {
        try await self.mutate { () throws(NodeError) -> NamespaceRecord? in
            let (exists, count) = self.state.withLock { ($0.records[name] != nil, $0.records.count) }
            if exists { return nil }
            if maxNamespaces > 0 && count >= maxNamespaces {
                throw NodeError(
                    .limitReached,
                    "namespace limit reached: \(maxNamespaces) namespaces are registered (TURSO_MAX_NAMESPACES)",
                    status: 429
                )
            }
            let record = NamespaceRecord(name: name, origin: origin, createdAt: now)
            try self.write(record)
            self.state.withLock { $0.records[name] = record }
            return record
        }
    }

    /// Makes the registry follow the cluster directory: `upserts` are written with their metadata
    /// (a record already here keeps its access time), `removals` deleted, in one transaction.
    public func mirror(upserts: [NamespaceRecord], removals: [String]) async throws(NodeError) {
        guard !upserts.isEmpty || !removals.isEmpty else { return }
        try await self.mutate { () throws(NodeError) in
            let merged = self.state.withLock { state in
                upserts.map { record in
                    var record = record
                    if let existing = state.records[record.name] { record.lastAccessAt = existing.lastAccessAt }
                    return record
                }
            }
            do {
                try self.connection.withLock { connection throws(SQLiteError) in
                    try connection.transaction { () throws(SQLiteError) in
                        for record in merged { try Self.write(record, connection) }
                        for name in removals {
                            try connection.run("DELETE FROM namespaces WHERE name = ?", [.text(name)])
                        }
                    }
                }
            } catch {
                throw NodeError.io("cannot update the state database: \(error)")
            }
            self.state.withLock { state in
                for record in merged { state.records[record.name] = record }
                for name in removals {
                    state.records[name] = nil
                    state.dirtyAccess.remove(name)
                }
            }
        }
    }

    /// Runs one change of the database on the blocking-I/O threads. Changes are serialised by the
    /// connection's lock; the in-memory records are locked only to read and publish, so lookups on
    /// the request path never wait for an fsync.
    func mutate<T: Sendable>(
        _ body: @escaping @Sendable () throws(NodeError) -> T
    ) async throws(NodeError)
        -> T
    {
        try await BlockingIO.run { () throws(NodeError) -> T in
            try self.writer.withLock { _ throws(NodeError) -> T in try body() }
        }
    }

    /// Only inside `mutate`.
    private func execute(_ sql: String, _ values: [SQLiteValue]) throws(NodeError) {
        do {
            try self.connection.withLock { try $0.run(sql, values) }
        } catch {
            throw NodeError.io("cannot update the state database: \(error)")
        }
    }

    /// Changes a namespace's metadata transactionally. Returns the updated record, or nil if unknown.
    public func update(
        _ name: String,
        _ change: @escaping @Sendable (inout NamespaceRecord) -> Void
    ) async throws(NodeError) -> NamespaceRecord? {
        try await self.mutate { () throws(NodeError) -> NamespaceRecord? in
            guard var record = self.state.withLock({ $0.records[name] }) else { return nil }
            change(&record)
            try self.write(record)
            return self.state.withLock { state in
                // A request may have touched it meanwhile: keep the newer access time in memory.
                let touched = state.records[name]?.lastAccessAt ?? record.lastAccessAt
                if touched <= record.lastAccessAt { state.dirtyAccess.remove(name) }
                record.lastAccessAt = max(record.lastAccessAt, touched)
                state.records[name] = record
                return record
            }
        }
    }

    /// Removes a namespace from the registry. Returns the removed record.
    @discardableResult
    public func remove(_ name: String) async throws(NodeError) -> NamespaceRecord? {
        try await self.mutate { () throws(NodeError) -> NamespaceRecord? in
            guard let record = self.state.withLock({ $0.records[name] }) else { return nil }
            try self.execute("DELETE FROM namespaces WHERE name = ?", [.text(name)])
            self.state.withLock { state in
                state.records[name] = nil
                state.dirtyAccess.remove(name)
            }
            return record
        }
    }

    /// Records a data request in memory (no I/O on the request path).
    public func touch(_ name: String, now: Int64) {
        self.state.withLock { state in
            guard state.records[name] != nil else { return }
            state.records[name]!.lastAccessAt = now
            state.dirtyAccess.insert(name)
        }
    }

    /// Writes the access times changed since the last flush, in one transaction.
    public func flushAccessTimes() async throws(NodeError) {
        try await BlockingIO.run { () throws(NodeError) in try self.flushAccessTimesNow() }
    }

    /// The flush on the calling thread, for shutdown (when the thread pool may be stopping).
    public func flushAccessTimesNow() throws(NodeError) {
        try self.writer.withLock { _ throws(NodeError) in try self.flushDirtyAccessTimes() }
    }

    private func flushDirtyAccessTimes() throws(NodeError) {
        let dirty = self.state.withLock { state -> [(String, Int64)] in
            defer { state.dirtyAccess.removeAll() }
            return state.dirtyAccess.compactMap { name in state.records[name].map { (name, $0.lastAccessAt) } }
        }
        guard !dirty.isEmpty else { return }
        do {
            try self.connection.withLock { connection throws(SQLiteError) in
                try connection.transaction { () throws(SQLiteError) in
                    for (name, time) in dirty {
                        try connection.run(
                            "UPDATE namespaces SET last_access_at = MAX(last_access_at, ?) WHERE name = ?",
                            [.integer(time), .text(name)]
                        )
                    }
                }
            }
        } catch {
            throw NodeError.io("cannot flush access times: \(error)")
        }
    }

    private func write(_ record: NamespaceRecord) throws(NodeError) {
        do {
            try self.connection.withLock { connection throws(SQLiteError) in try Self.write(record, connection) }
        } catch {
            throw NodeError.io("cannot update the state database: \(error)")
        }
    }

    static func write(_ record: NamespaceRecord, _ connection: SQLiteConnection) throws(SQLiteError) {
        try connection.run(
            """
            INSERT INTO namespaces(name, origin, locked, ttl_seconds, created_at, last_access_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET origin = excluded.origin, locked = excluded.locked,
                ttl_seconds = excluded.ttl_seconds, created_at = excluded.created_at,
                last_access_at = excluded.last_access_at
            """,
            [
                .text(record.name), .text(record.origin.rawValue), .integer(record.locked ? 1 : 0),
                record.ttlSeconds.map { .real($0) } ?? .null, .integer(record.createdAt),
                .integer(record.lastAccessAt),
            ]
        )
    }
}
