import Directory
import SQLiteSupport
import Synchronization

/// The applied directory on disk, `<state>/directory.db`: one row per namespace and member, and the
/// applied index written in the same transaction as the rows it produced, so after a crash the
/// directory is exactly the one at that index and the log replays from there.
///
/// Namespace rows are read from here, not kept in memory (`DirectoryLog` caches the recent ones).
/// Reads use their own connections (WAL: they never wait for the writer's fsync); only the drain
/// loop writes.
final class DirectoryStore: Sendable {
    static let formatVersion = 1

    private let connection: Mutex<SQLiteConnection>
    /// Point reads (routing's cache misses: short, one at a time) and scans (lists, snapshots,
    /// what a node owns) on connections of their own, opened once: a reader never waits for the
    /// writer's fsync, and a long scan never holds up routing.
    private let pointReader: Mutex<SQLiteConnection?> = Mutex(nil)
    private let scanReader: Mutex<SQLiteConnection?> = Mutex(nil)
    let path: String

    private static let columns = "name, state, owner, epoch, origin, locked, ttl_ms, created_at, replicas"

    init(directory: String) throws(NodeError) {
        self.path = directory + "/directory.db"
        self.connection = Mutex(
            try StateDatabase.open(
                self.path,
                formatVersion: Self.formatVersion,
                schema: """
                    CREATE TABLE IF NOT EXISTS namespaces(
                        name TEXT PRIMARY KEY, state INTEGER NOT NULL, owner TEXT NOT NULL, epoch INTEGER NOT NULL,
                        origin INTEGER NOT NULL, locked INTEGER NOT NULL, ttl_ms INTEGER, created_at INTEGER NOT NULL,
                        replicas BLOB
                    );
                    CREATE INDEX IF NOT EXISTS namespaces_by_owner ON namespaces(owner, state);
                    CREATE TABLE IF NOT EXISTS members(
                        id TEXT PRIMARY KEY, storage_id TEXT NOT NULL, zone TEXT NOT NULL, state INTEGER NOT NULL
                    );
                    """
            )
        )
        // A directory written before replica sets (format 3) gains their column; NULL is none.
        try self.connection.withLock { connection throws(NodeError) in
            do {
                let columns = try connection.query("PRAGMA table_info(namespaces)").compactMap { $0[1].textValue }
                if !columns.contains("replicas") {
                    try connection.execute("ALTER TABLE namespaces ADD COLUMN replicas BLOB")
                }
            } catch {
                throw NodeError(.stateUnreadable, "cannot upgrade \(self.path): \(error)")
            }
        }
    }

    /// The directory as persisted, without its namespace rows (members, counts, position).
    func load() throws(NodeError) -> DirectoryState {
        try self.connection.withLock { connection throws(NodeError) -> DirectoryState in
            let meta = try StateDatabase.meta(connection, path: self.path)
            var members: [String: MemberEntry] = [:]
            var owned: [String: Int] = [:]
            do {
                for row in try connection.query("SELECT owner, count(*) FROM namespaces GROUP BY owner") {
                    guard let owner = row[0].textValue, let count = row[1].unsigned else {
                        throw NodeError(.stateUnreadable, "\(self.path): malformed namespace row")
                    }
                    owned[owner] = Int(count)
                }
                for row in try connection.query("SELECT id, storage_id, zone, state FROM members") {
                    guard let id = row[0].textValue, let storage = row[1].textValue, let zone = row[2].textValue,
                        let state = row[3].unsigned.flatMap(Self.memberState)
                    else { throw NodeError(.stateUnreadable, "\(self.path): malformed member row") }
                    members[id] = MemberEntry(id: id, storageID: storage, zone: zone, state: state)
                }
            } catch let error as NodeError {
                throw error
            } catch {
                throw NodeError(.stateUnreadable, "cannot read the directory \(self.path): \(error)")
            }
            // A halt for a format this build knows (it was upgraded, as the halt asked) is lifted:
            // the applied index stayed before the entry, so the log replays it now.
            let halted = meta["halted_index"]?.unsigned.map {
                ($0, UInt32(clamping: meta["halted_format"]?.unsigned ?? 0))
            }
            .flatMap { $0.1 > DirectoryState.supportedFormat ? $0 : nil }
            return DirectoryState(
                members: members,
                ownedCounts: owned,
                format: UInt32(meta["format"]?.unsigned ?? 1),
                appliedIndex: meta["applied_index"]?.unsigned ?? 0,
                haltedAt: halted
            )
        }
    }

    // MARK: - Namespace rows

    /// The rows of `names` that exist.
    func entries(_ names: some Collection<String>) throws(NodeError) -> [NamespaceEntry] {
        guard !names.isEmpty else { return [] }
        return try self.reading(self.pointReader) { connection throws(SQLiteError) in
            let statement = try connection.prepare("SELECT \(Self.columns) FROM namespaces WHERE name = ?")
            var found: [NamespaceEntry] = []
            for name in names {
                statement.reset()
                try statement.bind([.text(name)])
                if try statement.step() { found.append(try self.entry(statement)) }
            }
            return found
        }
    }

    /// The rows `owner` owns, in `state` when given, sorted by name.
    func owned(by owner: String, state: NamespaceEntry.State? = nil) throws(NodeError) -> [NamespaceEntry] {
        try self.reading(self.scanReader) { connection throws(SQLiteError) in
            if let state {
                return try self.entries(
                    connection,
                    "SELECT \(Self.columns) FROM namespaces WHERE owner = ? AND state = ? ORDER BY name",
                    [.text(owner), .integer(Int64(state.rawValue))]
                )
            }
            return try self.entries(
                connection,
                "SELECT \(Self.columns) FROM namespaces WHERE owner = ? ORDER BY name",
                [.text(owner)]
            )
        }
    }

    /// Up to `limit` rows after `after` (by name), in name order; every row without a limit.
    func page(after: String?, limit: Int?) throws(NodeError) -> [NamespaceEntry] {
        try self.reading(self.scanReader) { connection throws(SQLiteError) in
            try self.entries(
                connection,
                "SELECT \(Self.columns) FROM namespaces WHERE name > ? ORDER BY name LIMIT ?",
                [.text(after ?? ""), .integer(Int64(limit ?? -1))]
            )
        }
    }

    /// Every namespace name (a snapshot replaced the directory: the names it had, for the mirror).
    func names() throws(NodeError) -> Set<String> {
        try self.reading(self.scanReader) { connection throws(SQLiteError) in
            Set(try connection.query("SELECT name FROM namespaces").compactMap { $0[0].textValue })
        }
    }

    /// Hands `body` the number of rows and a function that reads them one by one in name order,
    /// nil after the last (a snapshot being encoded, without holding every row in memory).
    func scan<T>(
        _ body: (Int, () throws(SQLiteError) -> NamespaceEntry?) throws(SQLiteError) -> T
    ) throws(NodeError) -> T {
        try self.reading(self.scanReader) { connection throws(SQLiteError) in
            // One read transaction: the count and the rows are of the same moment.
            try connection.execute("BEGIN")
            let count = Int(try connection.query("SELECT count(*) FROM namespaces").first?[0].unsigned ?? 0)
            let statement = try connection.prepare("SELECT \(Self.columns) FROM namespaces ORDER BY name")
            var read = 0
            let result = try body(count) { () throws(SQLiteError) -> NamespaceEntry? in
                guard read < count, try statement.step() else { return nil }
                read += 1
                return try self.entry(statement)
            }
            statement.reset()
            try connection.execute("COMMIT")
            return result
        }
    }

    private func entries(
        _ connection: SQLiteConnection,
        _ sql: String,
        _ arguments: [SQLiteValue]
    ) throws(SQLiteError) -> [NamespaceEntry] {
        let statement = try connection.prepare(sql)
        try statement.bind(arguments)
        var entries: [NamespaceEntry] = []
        while try statement.step() { entries.append(try self.entry(statement)) }
        return entries
    }

    /// The row `statement` stands on (columns as in `columns`), read column by column.
    private func entry(_ statement: SQLiteStatement) throws(SQLiteError) -> NamespaceEntry {
        guard let name = statement.value(0).textValue,
            let state = statement.value(1).unsigned.flatMap(Self.namespaceState),
            let owner = statement.value(2).textValue, let epoch = statement.value(3).unsigned,
            let origin = statement.value(4).unsigned.flatMap(Self.origin), let locked = statement.value(5).unsigned,
            let created = statement.value(7).unsigned
        else { throw SQLiteError(extendedCode: 11, message: "malformed namespace row") }
        var entry = NamespaceEntry(
            name: name,
            state: state,
            owner: owner,
            epoch: epoch,
            origin: origin,
            locked: locked != 0,
            ttlMilliseconds: statement.value(6).unsigned,
            createdAt: created
        )
        if let replicas = statement.value(8).blobValue {
            do {
                try DirectoryCodec.decodeReplicas(replicas, into: &entry)
            } catch {
                throw SQLiteError(extendedCode: 11, message: "malformed replica set of \(name)")
            }
        }
        return entry
    }

    /// Runs `body` on the read connection `slot` holds (opened on first use). A connection whose
    /// read failed is closed rather than reused (it might still be inside a read transaction and
    /// see an old directory).
    private func reading<T>(
        _ slot: borrowing Mutex<SQLiteConnection?>,
        _ body: (SQLiteConnection) throws(SQLiteError) -> T
    ) throws(NodeError) -> T {
        do {
            return try slot.withLock { held throws(SQLiteError) -> T in
                let connection: SQLiteConnection
                if let open = held { connection = open } else { connection = try SQLiteConnection(path: self.path) }
                held = nil
                let result = try body(connection)
                held = connection
                return result
            }
        } catch {
            throw NodeError(.stateUnreadable, "cannot read the directory \(self.path): \(error)")
        }
    }

    /// The rows a batch of applied entries changed (nil = deleted) and the directory's position:
    /// taken under the log's lock, written outside it.
    struct Rows: Sendable {
        var namespaces: [String: NamespaceEntry?] = [:]
        var members: [String: MemberEntry?] = [:]
        var appliedIndex: UInt64
        var format: UInt32
        var haltedAt: (index: UInt64, format: UInt32)?

        init(state: DirectoryState, namespaces: Set<String>, members: Set<String>) {
            for name in namespaces { self.namespaces[name] = .some(state.namespaces[name]) }
            for id in members { self.members[id] = .some(state.members[id]) }
            self.appliedIndex = state.appliedIndex
            self.format = state.format
            self.haltedAt = state.haltedAt
        }
    }

    /// Writes the changed rows and the applied index in one synced transaction.
    func persist(_ rows: Rows, replacingAll: Bool = false) throws(NodeError) {
        let state = rows
        do {
            try self.connection.withLock { connection throws(SQLiteError) in
                try connection.transaction { () throws(SQLiteError) in
                    if replacingAll { try connection.execute("DELETE FROM namespaces; DELETE FROM members;") }
                    for (name, row) in rows.namespaces.sorted(by: { $0.key < $1.key }) {
                        guard let entry = row else {
                            try connection.run("DELETE FROM namespaces WHERE name = ?", [.text(name)])
                            continue
                        }
                        try connection.run(
                            """
                            INSERT OR REPLACE INTO namespaces(
                                name, state, owner, epoch, origin, locked, ttl_ms, created_at, replicas
                            ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                            [
                                .text(name), .integer(Int64(entry.state.rawValue)), .text(entry.owner),
                                .integer(Int64(bitPattern: entry.epoch)), .integer(Int64(entry.origin.rawValue)),
                                .integer(entry.locked ? 1 : 0),
                                entry.ttlMilliseconds.map { .integer(Int64(bitPattern: $0)) } ?? .null,
                                .integer(Int64(bitPattern: entry.createdAt)),
                                DirectoryCodec.encodeReplicas(of: entry).map { .blob($0) } ?? .null,
                            ]
                        )
                    }
                    for (id, row) in rows.members.sorted(by: { $0.key < $1.key }) {
                        guard let member = row else {
                            try connection.run("DELETE FROM members WHERE id = ?", [.text(id)])
                            continue
                        }
                        try connection.run(
                            "INSERT OR REPLACE INTO members(id, storage_id, zone, state) VALUES (?, ?, ?, ?)",
                            [
                                .text(id), .text(member.storageID), .text(member.zone),
                                .integer(Int64(member.state.rawValue)),
                            ]
                        )
                    }
                    try StateDatabase.set(
                        connection,
                        [
                            "applied_index": .integer(Int64(bitPattern: state.appliedIndex)),
                            "format": .integer(Int64(state.format)),
                            "halted_index": state.haltedAt.map { .integer(Int64(bitPattern: $0.index)) } ?? .null,
                            "halted_format": state.haltedAt.map { .integer(Int64($0.format)) } ?? .null,
                        ]
                    )
                }
            }
        } catch {
            throw NodeError.io("cannot write the directory \(self.path): \(error)")
        }
    }

    /// Replaces every row with `state` (a snapshot installed), in one synced transaction.
    func replace(with state: DirectoryState) throws(NodeError) {
        try self.persist(
            Rows(state: state, namespaces: Set(state.namespaces.keys), members: Set(state.members.keys)),
            replacingAll: true
        )
    }

    /// A value kept beside the directory (the cluster id, whether the old registry was imported).
    func value(_ key: String) -> SQLiteValue? {
        try? self.connection.withLock { connection throws(NodeError) -> SQLiteValue? in
            try StateDatabase.meta(connection, path: self.path)[key]
        }
    }

    func setValue(_ key: String, _ value: SQLiteValue) throws(NodeError) {
        do {
            try self.connection.withLock { connection throws(SQLiteError) in
                try StateDatabase.set(connection, [key: value])
            }
        } catch {
            throw NodeError.io("cannot write the directory \(self.path): \(error)")
        }
    }

    private static func namespaceState(_ raw: UInt64) -> NamespaceEntry.State? {
        raw <= UInt64(UInt8.max) ? NamespaceEntry.State(rawValue: UInt8(raw)) : nil
    }

    private static func origin(_ raw: UInt64) -> NamespaceEntry.Origin? {
        raw <= UInt64(UInt8.max) ? NamespaceEntry.Origin(rawValue: UInt8(raw)) : nil
    }

    private static func memberState(_ raw: UInt64) -> MemberEntry.State? {
        raw <= UInt64(UInt8.max) ? MemberEntry.State(rawValue: UInt8(raw)) : nil
    }
}
