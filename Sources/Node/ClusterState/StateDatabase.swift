import SQLiteSupport

/// What every state database under `_state/` shares: an integrity check at open, WAL with
/// `synchronous=FULL` (a commit is durable when it returns), and a `meta` key-value table holding
/// the format version, refused when it is newer than this build's.
enum StateDatabase {
    /// Opens (creating if needed) the state database at `path`, checks and prepares it, and creates
    /// `schema`'s tables; every failure is a clear start error naming the file.
    static func open(_ path: String, formatVersion: Int, schema: String) throws(NodeError) -> SQLiteConnection {
        do {
            let connection = try SQLiteConnection(path: path)
            try self.prepare(connection, path: path, formatVersion: formatVersion)
            try connection.execute(schema)
            return connection
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError(.stateUnreadable, "cannot open state database \(path): \(error)")
        }
    }

    static func prepare(_ connection: SQLiteConnection, path: String, formatVersion: Int) throws(NodeError) {
        do {
            let check = try connection.query("PRAGMA quick_check")
            guard check.count == 1, check[0].first == .text("ok") else {
                throw NodeError(.stateUnreadable, "state database \(path) is corrupt (quick_check failed)")
            }
            try connection.execute(
                """
                PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
                """
            )
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError(.stateUnreadable, "cannot open state database \(path): \(error)")
        }
        let found = try self.meta(connection, path: path)["format_version"]
        if let found {
            guard let version = found.unsigned else {
                throw NodeError(.stateUnreadable, "state database \(path) has an unreadable format version")
            }
            guard version <= UInt64(formatVersion) else {
                throw NodeError(
                    .stateTooNew,
                    "state database \(path) has format \(version), newer than this build's \(formatVersion); run a newer turso-server"
                )
            }
        } else {
            do {
                try self.set(connection, ["format_version": .integer(Int64(formatVersion))])
            } catch {
                throw NodeError.io("cannot initialise state database \(path): \(error)")
            }
        }
    }

    static func meta(_ connection: SQLiteConnection, path: String) throws(NodeError) -> [String: SQLiteValue] {
        do {
            var meta: [String: SQLiteValue] = [:]
            for row in try connection.query("SELECT key, value FROM meta") {
                if case .text(let key) = row[0] { meta[key] = row[1] }
            }
            return meta
        } catch {
            throw NodeError(.stateUnreadable, "cannot read \(path): \(error)")
        }
    }

    static func set(_ connection: SQLiteConnection, _ values: [String: SQLiteValue]) throws(SQLiteError) {
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            try connection.run("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [.text(key), value])
        }
    }
}

extension SQLiteValue {
    /// An integer column read as the unsigned value it was written from (`Int64(bitPattern:)`).
    var unsigned: UInt64? {
        if case .integer(let value) = self { return UInt64(bitPattern: value) }
        return nil
    }

    var blobValue: [UInt8]? {
        if case .blob(let value) = self { return value }
        return nil
    }

    var textValue: String? {
        if case .text(let value) = self { return value }
        return nil
    }
}
