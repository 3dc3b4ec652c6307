import CSQLite
import SQLiteSupport

/// Opens and prepares the database a backend serves: WAL mode, 4096-byte pages, no reserved bytes,
/// and never a checkpoint (every connection has auto-checkpoint off and no checkpoint on close).
struct SyncDatabase: Sendable {
    let path: String
    let synchronousFull: Bool

    /// Creates the database if needed and checks that it can be served. Returns the first connection.
    func prepare() throws(SyncServerError) -> SQLiteConnection {
        let connection: SQLiteConnection
        do {
            connection = try SQLiteConnection(path: self.path)
            try connection.disableCheckpoints()
            let pages = try connection.query("PRAGMA page_count")
            if case .integer(0) = pages.first?.first ?? .null {
                try connection.execute("PRAGMA page_size=4096")
            }
            let mode = try connection.query("PRAGMA journal_mode=WAL")
            guard case .text(let journal) = mode.first?.first ?? .null, journal.lowercased() == "wal" else {
                throw SyncServerError.unsupportedDatabase("could not switch \(self.path) to WAL mode")
            }
            guard case .integer(let pageSize) = try connection.query("PRAGMA page_size").first?.first ?? .null,
                pageSize == 4096
            else {
                throw SyncServerError.unsupportedDatabase(
                    "\(self.path) does not use 4096-byte pages; the sync protocol requires them"
                )
            }
            // A database must exist on disk (page 1 written) before its main file is opened for reads.
            if case .integer(0) = try connection.query("PRAGMA page_count").first?.first ?? .null {
                try connection.execute(
                    "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS _turso_init(x); DROP TABLE _turso_init; COMMIT"
                )
            }
        } catch let error as SyncServerError {
            throw error
        } catch {
            throw .unsupportedDatabase("cannot open \(self.path): \(error)")
        }
        try self.configure(connection)
        return connection
    }

    /// Opens another connection with the serving configuration.
    func open() throws(SQLiteError) -> SQLiteConnection {
        let connection = try SQLiteConnection(path: self.path, create: false)
        do {
            try self.configure(connection)
        } catch {
            throw SQLiteError(extendedCode: 1, message: "\(error)")
        }
        return connection
    }

    private func configure(_ connection: SQLiteConnection) throws(SyncServerError) {
        do {
            try connection.disableCheckpoints()
            try connection.setConfigFlag(SQLITE_DBCONFIG_DEFENSIVE, true)
            try connection.execute(self.synchronousFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
        } catch {
            throw .unsupportedDatabase("cannot configure a connection to \(self.path): \(error)")
        }
        SQLGuard.install(on: connection, minimumSynchronous: self.synchronousFull ? 2 : 1)
    }
}
