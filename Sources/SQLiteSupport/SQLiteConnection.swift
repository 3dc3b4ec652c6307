import CSQLite

/// A libsqlite3 connection. Not thread-safe: use it from one thread at a time (the owner serializes).
public final class SQLiteConnection: @unchecked Sendable {
    public let handle: OpaquePointer
    /// Kept alive as long as the connection: the context of a callback installed on it (an authorizer).
    public var context: AnyObject?

    /// Opens (or creates) the database at `path` in multi-thread mode with a busy timeout.
    public init(
        path: String,
        readOnly: Bool = false,
        create: Bool = true,
        busyTimeoutMilliseconds: Int32 = 5000
    )
        throws(SQLiteError)
    {
        var db: OpaquePointer?
        var flags = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create && !readOnly { flags |= SQLITE_OPEN_CREATE }
        flags |= SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = SQLiteError.from(db, rc)
            sqlite3_close_v2(db)
            throw error
        }
        self.handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
    }

    deinit {
        sqlite3_close_v2(self.handle)
    }

    /// Runs one or more statements, discarding rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(self.handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errorMessage)
            throw SQLiteError(extendedCode: sqlite3_extended_errcode(self.handle), message: message)
        }
    }

    /// Prepares the first statement of `sql`; `tail` receives the unparsed remainder (UTF-8 offset).
    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        guard let (statement, _) = try self.prepareFirst(sql) else {
            throw SQLiteError(extendedCode: SQLITE_MISUSE, message: "empty statement")
        }
        return statement
    }

    /// Prepares the first statement in `sql`, returning it and the remaining SQL text, or nil when only
    /// whitespace and comments remain.
    public func prepareFirst(_ sql: String) throws(SQLiteError) -> (SQLiteStatement, String)? {
        var utf8 = Array(sql.utf8)
        utf8.append(0)
        var statement: OpaquePointer?
        var consumed = 0
        let rc = utf8.withUnsafeBufferPointer { buffer -> Int32 in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { base in
                var tail: UnsafePointer<CChar>?
                let rc = sqlite3_prepare_v2(self.handle, base, Int32(buffer.count - 1), &statement, &tail)
                if let tail { consumed = base.distance(to: tail) }
                return rc
            }
        }
        guard rc == SQLITE_OK else { throw SQLiteError.from(self.handle, rc) }
        let rest = String(decoding: utf8[consumed..<(utf8.count - 1)], as: UTF8.self)
        guard let statement else {
            return nil
        }
        return (SQLiteStatement(statement, connection: self), rest)
    }

    /// Runs `sql` and returns all rows.
    public func query(_ sql: String, _ arguments: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let statement = try self.prepare(sql)
        try statement.bind(arguments)
        var rows: [[SQLiteValue]] = []
        while try statement.step() {
            rows.append(statement.row())
        }
        return rows
    }

    /// Runs `sql` with `arguments`, discarding rows.
    public func run(_ sql: String, _ arguments: [SQLiteValue] = []) throws(SQLiteError) {
        let statement = try self.prepare(sql)
        try statement.bind(arguments)
        while try statement.step() {}
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction, committing on success and rolling back on error.
    public func transaction<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try self.execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try self.execute("COMMIT")
            return result
        } catch {
            if !self.isAutocommit { try? self.execute("ROLLBACK") }
            throw error
        }
    }

    public var isAutocommit: Bool { sqlite3_get_autocommit(self.handle) != 0 }
    public var changes: Int64 { sqlite3_changes64(self.handle) }
    public var totalChanges: Int64 { sqlite3_total_changes64(self.handle) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(self.handle) }

    /// Sets a boolean `SQLITE_DBCONFIG_*` option.
    public func setConfigFlag(_ option: Int32, _ enabled: Bool) throws(SQLiteError) {
        let rc = csqlite_db_config_flag(self.handle, option, enabled ? 1 : 0)
        guard rc == SQLITE_OK else { throw SQLiteError.from(self.handle, rc) }
    }

    /// Disables automatic checkpoints and the checkpoint on close: the WAL must never be checkpointed,
    /// because replicas and sync clients address pages by WAL frame (see the protocol note).
    public func disableCheckpoints() throws(SQLiteError) {
        _ = csqlite_wal_autocheckpoint_off(self.handle)
        try self.setConfigFlag(SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
    }
}
