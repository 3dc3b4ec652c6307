import CSQLite
import Foundation
import SQLiteSupport

/// Refuses the statements that would checkpoint, restart or detach the WAL, reach other files or
/// lower durability, and tracks session changes so a changed connection never returns to the pool.
///
/// Every replica and sync client addresses pages by WAL frame, so the WAL must never be checkpointed
/// or restarted (protocol note, pitfall 1). `PRAGMA` and `ATTACH` go through SQLite's authorizer, which
/// also sees them inside triggers and with schema prefixes; `VACUUM` has no authorizer code, so it is
/// refused by its leading keyword (`VACUUM INTO` too: backups come from the node's backup endpoint).
enum SQLGuard {
    static let refusedPragmas: Set<String> = [
        "wal_checkpoint", "journal_mode", "wal_autocheckpoint", "locking_mode", "page_size", "journal_size_limit",
        "writable_schema", "schema_version",
    ]
    /// Pragmas refused only when they set a value (reading them is harmless).
    static let readOnlyPragmas: Set<String> = [
        "journal_mode", "wal_autocheckpoint", "locking_mode", "page_size", "journal_size_limit", "schema_version",
    ]
    /// Pragmas whose argument names what to inspect instead of setting anything: they leave the
    /// session as it was.
    static let inspectingPragmas: Set<String> = [
        "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list", "foreign_key_list",
        "foreign_key_check", "integrity_check", "quick_check",
    ]

    /// `PRAGMA synchronous` levels by name and number.
    static func synchronousLevel(_ text: String) -> Int32? {
        switch text.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) {
        case "0", "off": 0
        case "1", "normal": 1
        case "2", "full": 2
        case "3", "extra": 3
        default: nil
        }
    }

    /// Installs the guard on `connection` and returns its session: what the connection's clients
    /// changed that must not reach the next stream that gets the connection from the pool.
    @discardableResult
    static func install(on connection: SQLiteConnection, minimumSynchronous: Int32) -> SessionState {
        let session = SessionState(minimumSynchronous: minimumSynchronous)
        connection.context = session
        sqlite3_set_authorizer(
            connection.handle,
            { context, action, first, second, database, _ in
                let session = Unmanaged<SessionState>.fromOpaque(context!).takeUnretainedValue()
                switch action {
                case SQLITE_ATTACH, SQLITE_DETACH:
                    return SQLITE_DENY
                case SQLITE_PRAGMA:
                    guard let first else { return SQLITE_OK }
                    let name = String(cString: first).lowercased()
                    if SQLGuard.refusedPragmas.contains(name) {
                        return SQLGuard.readOnlyPragmas.contains(name) && second == nil ? SQLITE_OK : SQLITE_DENY
                    }
                    guard let second else { return SQLITE_OK }
                    if name == "synchronous" {
                        // Below the server's level, acknowledged writes would no longer be durable.
                        guard let level = SQLGuard.synchronousLevel(String(cString: second)),
                            level >= session.minimumSynchronous
                        else { return SQLITE_DENY }
                    }
                    if !SQLGuard.inspectingPragmas.contains(name) { session.changed = true }
                    return SQLITE_OK
                case SQLITE_CREATE_TEMP_TABLE, SQLITE_CREATE_TEMP_INDEX, SQLITE_CREATE_TEMP_TRIGGER,
                    SQLITE_CREATE_TEMP_VIEW:
                    session.changed = true
                    return SQLITE_OK
                case SQLITE_CREATE_VTABLE:
                    if let database, String(cString: database) == "temp" { session.changed = true }
                    return SQLITE_OK
                default:
                    return SQLITE_OK
                }
            },
            Unmanaged.passUnretained(session).toOpaque()
        )
        return session
    }

    /// True when `connection` may go back to the pool: no session pragma was set and no temporary
    /// object created on it (a connection must come back exactly as a fresh one, or not at all).
    static func isPristine(_ connection: SQLiteConnection) -> Bool {
        guard let session = connection.context as? SessionState else { return true }
        return !session.changed
    }

    /// The first keyword of a statement, upper-cased, skipping whitespace and comments.
    static func leadingKeyword(_ sql: String) -> String {
        var scalars = Substring(sql).unicodeScalars[...]
        while let first = scalars.first {
            if first.properties.isWhitespace {
                scalars = scalars.dropFirst()
            } else if scalars.starts(with: "--".unicodeScalars) {
                scalars = scalars.drop { $0 != "\n" }
            } else if scalars.starts(with: "/*".unicodeScalars) {
                scalars = scalars.dropFirst(2)
                while !scalars.isEmpty && !scalars.starts(with: "*/".unicodeScalars) { scalars = scalars.dropFirst() }
                scalars = scalars.dropFirst(2)
            } else {
                break
            }
        }
        let word = scalars.prefix { $0.properties.isAlphabetic || $0 == "_" }
        return String(String.UnicodeScalarView(word)).uppercased()
    }

    /// Throws for a statement that must not run through the data path.
    static func check(_ sql: String) throws(HranaError) {
        if self.leadingKeyword(sql) == "VACUUM" {
            throw HranaError(
                message:
                    "VACUUM is not allowed: it would rewrite the database behind every replica (use the backup endpoint)",
                code: "SQLITE_AUTH"
            )
        }
    }

    /// True for `ALTER TABLE … ADD [COLUMN] …`, whose "duplicate column" errors the sync client ignores.
    static func isAlterAddColumn(_ sql: String) -> Bool {
        guard self.leadingKeyword(sql) == "ALTER" else { return false }
        let words = sql.uppercased().split(whereSeparator: { $0.isWhitespace })
        return words.contains("ADD")
    }
}

/// What the clients of one connection changed in its session (set by the authorizer, which runs on
/// the thread that uses the connection).
final class SessionState: @unchecked Sendable {
    let minimumSynchronous: Int32
    var changed = false

    init(minimumSynchronous: Int32) {
        self.minimumSynchronous = minimumSynchronous
    }
}
