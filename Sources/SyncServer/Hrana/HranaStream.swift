import Foundation
import SQLiteSupport

/// One Hrana stream: a SQLite connection (so a transaction can span requests) and its stored SQL.
/// Used by one request at a time (`StreamRegistry` hands it out exclusively).
final class HranaStream: @unchecked Sendable {
    let id: UInt64
    let connection: SQLiteConnection
    var storedSQL: [Int: String] = [:]
    var baton: String = ""
    var lastUsed: UInt64 = 0
    var busy = false

    init(id: UInt64, connection: SQLiteConnection) {
        self.id = id
        self.connection = connection
    }

    func sql(text: Any?, id: Any?) throws(HranaError) -> String {
        if let text = text as? String { return text }
        if let id = (id as? NSNumber)?.intValue {
            guard let sql = self.storedSQL[id] else { throw .invalid("SQL text with id \(id) is not stored") }
            return sql
        }
        throw .invalid("a statement needs sql or sql_id")
    }

    /// Returns the connection to autocommit, rolling back whatever was left open.
    func rollbackIfNeeded() {
        if !self.connection.isAutocommit { try? self.connection.execute("ROLLBACK") }
    }
}
