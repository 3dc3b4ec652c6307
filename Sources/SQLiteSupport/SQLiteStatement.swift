import CSQLite

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A prepared statement. Finalized on deinit; used on its connection's thread only.
public final class SQLiteStatement: @unchecked Sendable {
    public let handle: OpaquePointer
    private let connection: SQLiteConnection

    init(_ handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit {
        sqlite3_finalize(self.handle)
    }

    public var parameterCount: Int { Int(sqlite3_bind_parameter_count(self.handle)) }
    public var columnCount: Int { Int(sqlite3_column_count(self.handle)) }
    public var isReadOnly: Bool { sqlite3_stmt_readonly(self.handle) != 0 }
    public var isExplain: Bool { sqlite3_stmt_isexplain(self.handle) != 0 }

    public func parameterName(_ index: Int) -> String? {
        sqlite3_bind_parameter_name(self.handle, Int32(index)).map { String(cString: $0) }
    }

    /// The 1-based index of a named parameter (`:name`, `@name`, `$name`), or nil.
    public func parameterIndex(_ name: String) -> Int? {
        let index = sqlite3_bind_parameter_index(self.handle, name)
        return index > 0 ? Int(index) : nil
    }

    public func columnName(_ index: Int) -> String {
        sqlite3_column_name(self.handle, Int32(index)).map { String(cString: $0) } ?? ""
    }

    public func columnDeclaredType(_ index: Int) -> String? {
        sqlite3_column_decltype(self.handle, Int32(index)).map { String(cString: $0) }
    }

    public func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            try self.bind(value, at: offset + 1)
        }
    }

    public func bind(_ value: SQLiteValue, at index: Int) throws(SQLiteError) {
        let position = Int32(index)
        let rc: Int32
        switch value {
        case .null:
            rc = sqlite3_bind_null(self.handle, position)
        case .integer(let v):
            rc = sqlite3_bind_int64(self.handle, position, v)
        case .real(let v):
            rc = sqlite3_bind_double(self.handle, position, v)
        case .text(let v):
            rc = sqlite3_bind_text(self.handle, position, v, -1, transient)
        case .blob(let v):
            rc = v.withUnsafeBytes {
                sqlite3_bind_blob64(self.handle, position, $0.baseAddress, UInt64($0.count), transient)
            }
        }
        guard rc == SQLITE_OK else { throw SQLiteError.from(self.connection.handle, rc) }
    }

    /// Advances the statement. Returns true when a row is available.
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(self.handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw SQLiteError.from(self.connection.handle, rc)
        }
    }

    public func reset() {
        sqlite3_reset(self.handle)
        sqlite3_clear_bindings(self.handle)
    }

    public func value(_ column: Int) -> SQLiteValue {
        let index = Int32(column)
        switch sqlite3_column_type(self.handle, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(self.handle, index))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(self.handle, index))
        case SQLITE_TEXT:
            let count = Int(sqlite3_column_bytes(self.handle, index))
            guard let pointer = sqlite3_column_text(self.handle, index) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(self.handle, index))
            guard count > 0, let pointer = sqlite3_column_blob(self.handle, index) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
        default:
            return .null
        }
    }

    public func row() -> [SQLiteValue] {
        (0..<self.columnCount).map { self.value($0) }
    }
}
