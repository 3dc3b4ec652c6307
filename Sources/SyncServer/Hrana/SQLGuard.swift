import CSQLite
import SQLiteSupport

/// Refuses the statements that would checkpoint, restart or detach the WAL, or reach other files.
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

    static func install(on connection: SQLiteConnection) {
        sqlite3_set_authorizer(
            connection.handle,
            { _, action, first, second, _, _ in
                switch action {
                case SQLITE_ATTACH, SQLITE_DETACH:
                    return SQLITE_DENY
                case SQLITE_PRAGMA:
                    guard let first else { return SQLITE_OK }
                    let name = String(cString: first).lowercased()
                    guard SQLGuard.refusedPragmas.contains(name) else { return SQLITE_OK }
                    if SQLGuard.readOnlyPragmas.contains(name) && second == nil { return SQLITE_OK }
                    return SQLITE_DENY
                default:
                    return SQLITE_OK
                }
            },
            nil
        )
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
