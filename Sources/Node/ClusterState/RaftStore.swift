import Consensus
import Foundation
import SQLiteSupport
import Synchronization

/// The durable half of this node's Raft replica: hard state, the snapshot's metadata and the log
/// entries after it, in `<state>/raft.db` (SQLite, WAL, `synchronous=FULL`, so a committed
/// transaction is on disk before `save` returns and before the shell sends anything that depends on it).
///
/// The directory (the application state) lives in its own database with its applied index; the
/// snapshot kept here (where the log was cut, and the directory encoded at that index) is what a
/// member that lags behind the cut is sent.
final class RaftStore: Sendable {
    static let formatVersion = 1

    private let connection: Mutex<SQLiteConnection>
    let path: String

    init(directory: String) throws(NodeError) {
        self.path = directory + "/raft.db"
        self.connection = Mutex(
            try StateDatabase.open(
                self.path,
                formatVersion: Self.formatVersion,
                schema: """
                    CREATE TABLE IF NOT EXISTS entries(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, payload BLOB NOT NULL);
                    """
            )
        )
    }

    /// Whether `<directory>/raft.db` holds a replica (a hard state was saved): a file created by a
    /// first start that crashed before its first save holds none.
    static func hasState(directory: String) throws(NodeError) -> Bool {
        guard FileManager.default.fileExists(atPath: directory + "/raft.db") else { return false }
        let store = try RaftStore(directory: directory)
        return try store.reading { connection throws(NodeError) in
            try StateDatabase.meta(connection, path: store.path)["term"]?.unsigned != nil
        }
    }

    /// What the replica restarts from, or nil when this node has never been part of a group.
    func load() throws(NodeError) -> PersistentState? {
        try self.reading { connection throws(NodeError) -> PersistentState? in
            let meta = try StateDatabase.meta(connection, path: self.path)
            guard let term = meta["term"]?.unsigned else { return nil }
            let configuration: ClusterConfiguration
            do {
                configuration = try RaftCodec.decodeConfiguration(meta["snapshot_configuration"]?.blobValue ?? [])
            } catch {
                throw NodeError(.stateUnreadable, "\(self.path): unreadable snapshot configuration: \(error)")
            }
            let hardState = HardState(
                term: term,
                vote: meta["vote"]?.unsigned.map(ReplicaID.init),
                commit: meta["commit"]?.unsigned ?? 0
            )
            let snapshot = Snapshot(
                metadata: SnapshotMetadata(
                    index: meta["snapshot_index"]?.unsigned ?? 0,
                    term: meta["snapshot_term"]?.unsigned ?? 0,
                    configuration: configuration
                ),
                data: meta["snapshot_data"]?.blobValue ?? []
            )
            var entries: [LogEntry] = []
            var expected = snapshot.metadata.index + 1
            for row in try Self.query(
                connection,
                "SELECT idx, term, payload FROM entries ORDER BY idx",
                path: self.path
            ) {
                guard case .integer(let index) = row[0], case .integer(let term) = row[1],
                    case .blob(let bytes) = row[2]
                else { throw NodeError(.stateUnreadable, "\(self.path): malformed log entry row") }
                guard UInt64(index) == expected else {
                    throw NodeError(.stateUnreadable, "\(self.path): the log has a gap at index \(expected)")
                }
                do {
                    entries.append(
                        LogEntry(
                            term: UInt64(term),
                            index: UInt64(index),
                            payload: try RaftCodec.decodePayload(bytes)
                        )
                    )
                } catch {
                    throw NodeError(.stateUnreadable, "\(self.path): log entry \(index) is unreadable: \(error)")
                }
                expected += 1
            }
            return PersistentState(hardState: hardState, snapshot: snapshot, entries: entries)
        }
    }

    /// Persists what a `Ready` asks for, in one synced transaction: a snapshot replaces the whole log,
    /// new entries replace every entry at their first index and above, then the hard state.
    func save(hardState: HardState?, entries: [LogEntry], snapshot: Snapshot?) throws(NodeError) {
        guard hardState != nil || !entries.isEmpty || snapshot != nil else { return }
        try self.writing { connection throws(SQLiteError) in
            if let snapshot {
                try connection.run("DELETE FROM entries")
                try self.writeSnapshot(snapshot, connection)
            }
            if let first = entries.first {
                try connection.run("DELETE FROM entries WHERE idx >= ?", [.integer(Int64(first.index))])
                let insert = try connection.prepare("INSERT INTO entries(idx, term, payload) VALUES (?, ?, ?)")
                for entry in entries {
                    insert.reset()
                    try insert.bind([
                        .integer(Int64(entry.index)), .integer(Int64(entry.term)),
                        .blob(RaftCodec.encode(entry.payload)),
                    ])
                    _ = try insert.step()
                }
            }
            if let hardState {
                try StateDatabase.set(
                    connection,
                    [
                        "term": .integer(Int64(bitPattern: hardState.term)),
                        "vote": hardState.vote.map { .integer(Int64(bitPattern: $0.rawValue)) } ?? .null,
                        "commit": .integer(Int64(bitPattern: hardState.commit)),
                    ]
                )
            }
        }
    }

    /// Records that the log now starts after `snapshot.index` and drops the entries it covers.
    func compact(_ snapshot: Snapshot) throws(NodeError) {
        try self.writing { connection throws(SQLiteError) in
            try connection.run("DELETE FROM entries WHERE idx <= ?", [.integer(Int64(snapshot.metadata.index))])
            try self.writeSnapshot(snapshot, connection)
        }
    }

    func value(_ key: String) -> SQLiteValue? {
        try? self.reading { connection throws(NodeError) -> SQLiteValue? in
            try StateDatabase.meta(connection, path: self.path)[key]
        }
    }

    func setValues(_ values: [String: SQLiteValue]) throws(NodeError) {
        try self.writing { connection throws(SQLiteError) in try StateDatabase.set(connection, values) }
    }

    /// Entries stored after the snapshot (for metrics).
    func entryCount() -> Int {
        (try? self.reading { connection throws(NodeError) -> Int in
            guard
                case .integer(let count)? = try Self.query(connection, "SELECT count(*) FROM entries", path: self.path)
                    .first?.first
            else { return 0 }
            return Int(count)
        }) ?? 0
    }

    private func writeSnapshot(_ snapshot: Snapshot, _ connection: SQLiteConnection) throws(SQLiteError) {
        try StateDatabase.set(
            connection,
            [
                "snapshot_index": .integer(Int64(bitPattern: snapshot.metadata.index)),
                "snapshot_term": .integer(Int64(bitPattern: snapshot.metadata.term)),
                "snapshot_configuration": .blob(RaftCodec.encode(snapshot.metadata.configuration)),
                "snapshot_data": .blob(snapshot.data),
            ]
        )
    }

    private func reading<T>(_ body: (SQLiteConnection) throws(NodeError) -> T) throws(NodeError) -> T {
        try self.connection.withLock { connection throws(NodeError) -> T in try body(connection) }
    }

    private func writing(_ body: (SQLiteConnection) throws(SQLiteError) -> Void) throws(NodeError) {
        do {
            try self.connection.withLock { connection throws(SQLiteError) in
                try connection.transaction { () throws(SQLiteError) in try body(connection) }
            }
        } catch {
            throw NodeError.io("cannot write the Raft log \(self.path): \(error)")
        }
    }

    private static func query(
        _ connection: SQLiteConnection,
        _ sql: String,
        path: String
    ) throws(NodeError) -> [[SQLiteValue]] {
        do { return try connection.query(sql) } catch {
            throw NodeError(.stateUnreadable, "cannot read \(path): \(error)")
        }
    }
}
