import CSQLite
import Foundation
import SQLiteSupport
import Synchronization

/// Executes Hrana statements, batches and requests on a stream's connection. Runs on a thread-pool
/// thread; everything here is blocking SQLite work.
struct HranaExecutor {
    let stream: HranaStream
    /// Called after a statement that changed the database, to wake long-polling pulls.
    let didWrite: () -> Void
    /// Serializes autocommit writes inside this process, so concurrent writers queue on a lock
    /// instead of polling SQLite's busy handler (which sleeps and makes long latency tails).
    let writeLock: WriteLock

    var connection: SQLiteConnection { self.stream.connection }

    // MARK: statements

    /// Executes one statement (`{"sql"|"sql_id", "args", "named_args", "want_rows"}`) and returns a
    /// `StmtResult` object.
    func execute(_ statementJSON: Any?) throws(HranaError) -> [String: Any] {
        var cols: [[String: Any]] = []
        var rows: [[Any]] = []
        var result: [String: Any] = [:]
        try self.run(statementJSON) { event in
            switch event {
            case .columns(let c): cols = c
            case .row(let row): rows.append(row)
            case .end(let affected, let rowid, let duration):
                result["affected_row_count"] = affected
                result["last_insert_rowid"] = rowid.map { String($0) as Any } ?? NSNull()
                result["replication_index"] = NSNull()
                result["rows_written"] = affected
                result["query_duration_ms"] = duration
            }
        }
        result["cols"] = cols
        result["rows_read"] = rows.count
        result["rows"] = rows
        return result
    }

    enum Event {
        case columns([[String: Any]])
        case row([Any])
        case end(affected: Int64, lastInsertRowID: Int64?, durationMilliseconds: Double)
    }

    /// Executes one statement, reporting columns, rows and the end to `emit` (the cursor endpoint
    /// streams them; `execute` collects them).
    func run(_ statementJSON: Any?, emit: (Event) -> Void) throws(HranaError) {
        guard let object = statementJSON as? [String: Any] else { throw .invalid("a statement must be an object") }
        let sql = try self.stream.sql(text: object["sql"], id: object["sql_id"])
        try SQLGuard.check(sql)
        let started = DispatchTime.now().uptimeNanoseconds
        let prepared: (SQLiteStatement, String)?
        do {
            prepared = try self.connection.prepareFirst(sql)
        } catch {
            throw HranaError(error)
        }
        guard let (statement, rest) = prepared else { throw .invalid("the SQL text contains no statement") }
        if !SQLGuard.leadingKeyword(rest).isEmpty {
            throw HranaError(message: "SQL string contains more than one statement", code: "SQL_MANY_STATEMENTS")
        }
        try self.bind(statement, args: object["args"], namedArgs: object["named_args"])
        let wantRows = (object["want_rows"] as? Bool) ?? true
        var cols: [[String: Any]] = []
        for i in 0..<statement.columnCount {
            cols.append([
                "name": statement.columnName(i), "decltype": statement.columnDeclaredType(i) as Any? ?? NSNull(),
            ])
        }
        emit(.columns(cols))
        let before = self.connection.totalChanges
        if !statement.isReadOnly && self.connection.isAutocommit {
            try self.writeLock.withLock { () throws(HranaError) in
                try Self.stepAll(statement, wantRows: wantRows, emit: emit)
            }
        } else {
            try Self.stepAll(statement, wantRows: wantRows, emit: emit)
        }
        let changed = self.connection.totalChanges != before
        if changed || !statement.isReadOnly { self.didWrite() }
        let duration = Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
        emit(
            .end(
                affected: changed ? self.connection.changes : 0,
                lastInsertRowID: changed ? self.connection.lastInsertRowID : nil,
                durationMilliseconds: duration
            )
        )
    }

    private static func stepAll(_ statement: SQLiteStatement, wantRows: Bool, emit: (Event) -> Void) throws(HranaError)
    {
        do {
            while try statement.step() {
                if wantRows { emit(.row(statement.row().map(HranaValue.encode))) }
            }
        } catch {
            throw HranaError(error)
        }
    }

    private func bind(_ statement: SQLiteStatement, args: Any?, namedArgs: Any?) throws(HranaError) {
        let positional = (args as? [Any]) ?? []
        let named = (namedArgs as? [Any]) ?? []
        if positional.count + named.count > statement.parameterCount {
            throw HranaError(
                message:
                    "the statement has \(statement.parameterCount) parameters, \(positional.count + named.count) values given",
                code: "ARGS_INVALID"
            )
        }
        do {
            for (offset, value) in positional.enumerated() {
                try statement.bind(try HranaValue.decode(value), at: offset + 1)
            }
            for entry in named {
                guard let entry = entry as? [String: Any], let name = entry["name"] as? String else {
                    throw HranaError.invalid("a named argument needs a name and a value")
                }
                let candidates =
                    name.first.map { ":@$".contains($0) } == true ? [name] : [":" + name, "@" + name, "$" + name]
                guard let index = candidates.lazy.compactMap({ statement.parameterIndex($0) }).first else {
                    throw HranaError(message: "the statement has no parameter named \(name)", code: "ARGS_INVALID")
                }
                try statement.bind(try HranaValue.decode(entry["value"]), at: index)
            }
        } catch let error as HranaError {
            throw error
        } catch let error as SQLiteError {
            throw HranaError(error)
        } catch {
            throw HranaError.invalid("\(error)")
        }
    }

    // MARK: batches

    /// Evaluates a batch condition against the results so far.
    func evaluate(_ condition: Any?, results: [Bool?]) throws(HranaError) -> Bool {
        guard let condition else { return true }
        if condition is NSNull { return true }
        guard let object = condition as? [String: Any], let type = object["type"] as? String else {
            throw .invalid("a condition must be an object with a type")
        }
        func step() throws(HranaError) -> Int {
            guard let step = (object["step"] as? NSNumber)?.intValue, step >= 0, step < results.count else {
                throw .invalid("a condition refers to a step that has not run before it")
            }
            return step
        }
        switch type {
        case "ok": return results[try step()] == true
        case "error": return results[try step()] == false
        case "not": return !(try self.evaluate(object["cond"], results: results))
        case "and":
            for c in (object["conds"] as? [Any]) ?? [] where !(try self.evaluate(c, results: results)) { return false }
            return true
        case "or":
            for c in (object["conds"] as? [Any]) ?? [] where try self.evaluate(c, results: results) { return true }
            return false
        case "is_autocommit": return self.connection.isAutocommit
        default: throw .invalid("unknown condition type \(type)")
        }
    }

    /// Runs a batch. A batch that opens a transaction with its first step and then has a failing step
    /// (other than an `ALTER TABLE … ADD COLUMN`, whose errors the sync client ignores) is rolled back at
    /// once, so its later steps (conditioned on "not autocommit") and its COMMIT do not run: a push is
    /// applied whole or not at all.
    func batch(
        _ batchJSON: Any?,
        emit: ((Int, Event?) -> Void)? = nil,
        stepError: ((Int, HranaError) -> Void)? = nil
    )
        throws(HranaError) -> (results: [Any], errors: [Any])
    {
        guard let object = batchJSON as? [String: Any], let steps = object["steps"] as? [Any] else {
            throw .invalid("a batch needs steps")
        }
        var outcomes: [Bool?] = []
        var results: [Any] = []
        var errors: [Any] = []
        var opensTransaction = false
        for (index, stepJSON) in steps.enumerated() {
            guard let step = stepJSON as? [String: Any] else { throw .invalid("a batch step must be an object") }
            guard try self.evaluate(step["condition"], results: outcomes) else {
                outcomes.append(nil)
                results.append(NSNull())
                errors.append(NSNull())
                continue
            }
            let sql = (step["stmt"] as? [String: Any])?["sql"] as? String
            if index == 0, let sql, SQLGuard.leadingKeyword(sql) == "BEGIN" { opensTransaction = true }
            do {
                let result: [String: Any]
                if let emit {
                    emit(index, nil)
                    try self.run(step["stmt"]) { emit(index, $0) }
                    result = [:]
                } else {
                    result = try self.execute(step["stmt"])
                }
                outcomes.append(true)
                results.append(result)
                errors.append(NSNull())
            } catch {
                outcomes.append(false)
                results.append(NSNull())
                errors.append(error.json)
                stepError?(index, error)
                if opensTransaction, !self.connection.isAutocommit, !(sql.map(SQLGuard.isAlterAddColumn) ?? false) {
                    try? self.connection.execute("ROLLBACK")
                }
            }
        }
        return (results, errors)
    }

    // MARK: pipeline requests

    /// Executes one pipeline request; returns the `response` object. Throws for a request error.
    /// `close` is handled by the caller.
    func request(_ requestJSON: [String: Any]) throws(HranaError) -> [String: Any] {
        guard let type = requestJSON["type"] as? String else { throw .invalid("a request needs a type") }
        switch type {
        case "execute":
            return ["type": "execute", "result": try self.execute(requestJSON["stmt"])]
        case "batch":
            let (results, errors) = try self.batch(requestJSON["batch"])
            return [
                "type": "batch",
                "result": ["step_results": results, "step_errors": errors, "replication_index": NSNull()],
            ]
        case "sequence":
            var sql = try self.stream.sql(text: requestJSON["sql"], id: requestJSON["sql_id"])
            while true {
                let prepared: (SQLiteStatement, String)?
                do {
                    prepared = try self.connection.prepareFirst(sql)
                } catch {
                    throw HranaError(error)
                }
                guard let (statement, rest) = prepared else { break }
                let text = String(sql.dropLast(rest.count))
                try SQLGuard.check(text)
                let before = self.connection.totalChanges
                do {
                    while try statement.step() {}
                } catch {
                    throw HranaError(error)
                }
                if self.connection.totalChanges != before || !statement.isReadOnly { self.didWrite() }
                sql = rest
            }
            return ["type": "sequence"]
        case "describe":
            let sql = try self.stream.sql(text: requestJSON["sql"], id: requestJSON["sql_id"])
            let statement: SQLiteStatement
            do {
                statement = try self.connection.prepare(sql)
            } catch {
                throw HranaError(error)
            }
            let params: [[String: Any]] = (0..<statement.parameterCount).map {
                ["name": statement.parameterName($0 + 1) as Any? ?? NSNull()]
            }
            let cols: [[String: Any]] = (0..<statement.columnCount).map {
                ["name": statement.columnName($0), "decltype": statement.columnDeclaredType($0) as Any? ?? NSNull()]
            }
            return [
                "type": "describe",
                "result": [
                    "params": params, "cols": cols, "is_explain": statement.isExplain,
                    "is_readonly": statement.isReadOnly,
                ],
            ]
        case "store_sql":
            guard let id = (requestJSON["sql_id"] as? NSNumber)?.intValue,
                let sql = requestJSON["sql"] as? String
            else { throw .invalid("store_sql needs sql_id and sql") }
            guard self.stream.storedSQL.count < 1024 || self.stream.storedSQL[id] != nil else {
                throw HranaError(message: "too many stored SQL texts on this stream", code: "SQL_STORE_FULL")
            }
            self.stream.storedSQL[id] = sql
            return ["type": "store_sql"]
        case "close_sql":
            if let id = (requestJSON["sql_id"] as? NSNumber)?.intValue { self.stream.storedSQL[id] = nil }
            return ["type": "close_sql"]
        case "get_autocommit":
            return ["type": "get_autocommit", "is_autocommit": self.connection.isAutocommit]
        default:
            throw .invalid("unknown request type \(type)")
        }
    }
}

/// One lock per database for autocommit writes (see `HranaExecutor.writeLock`).
final class WriteLock: Sendable {
    private let mutex = Mutex<Void>(())

    func withLock<T>(_ body: () throws(HranaError) -> T) throws(HranaError) -> T {
        try self.mutex.withLock { _ throws(HranaError) in try body() }
    }
}
