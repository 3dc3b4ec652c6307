import Foundation
import Ownership
import SQLiteSupport

/// What this node durably holds of each namespace, for the ownership machine: its files at a version
/// (incarnation and epoch), usable or sealed for a move. A held copy has a registry record (the
/// working set GC and the supervisor read); a sealed one has none, so nothing starts its backend.
extension NamespaceRegistry {
    /// Every copy recorded here.
    func copies() throws(NodeError) -> [String: OwnershipMachine.Copy] {
        do {
            let rows = try self.connection.withLock {
                try $0.query("SELECT name, created_at, epoch, sealed FROM copies")
            }
            var copies: [String: OwnershipMachine.Copy] = [:]
            for row in rows {
                guard case .text(let name) = row[0], let copy = Self.copy(row.dropFirst()) else {
                    throw NodeError(.stateUnreadable, "state database \(self.path) has a malformed copy row")
                }
                copies[name] = copy
            }
            return copies
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError.io("cannot read the state database: \(error)")
        }
    }

    /// Changes whenever a copy is recorded or dropped: an unchanged version means `copies()` would
    /// answer the same.
    var copiesVersion: UInt64 { self.state.withLock { $0.copiesVersion } }

    /// This node's copy of `name`, if it has one.
    func copy(_ name: String) -> OwnershipMachine.Copy? {
        let rows = try? self.connection.withLock {
            try $0.query("SELECT created_at, epoch, sealed FROM copies WHERE name = ?", [.text(name)])
        }
        return rows?.first.flatMap { Self.copy($0[...]) }
    }

    /// A copy from its columns `created_at, epoch, sealed`.
    private static func copy(_ columns: ArraySlice<SQLiteValue>) -> OwnershipMachine.Copy? {
        guard columns.count == 3, case .integer(let createdAt) = columns[columns.startIndex],
            case .integer(let epoch) = columns[columns.startIndex + 1],
            case .integer(let sealed) = columns[columns.startIndex + 2]
        else { return nil }
        let version = OwnershipMachine.Version(createdAt: UInt64(createdAt), epoch: UInt64(epoch))
        return sealed != 0 ? .sealed(version) : .held(version)
    }

    /// Records `copy` of `record.name`, in one transaction with its registry record: written for a
    /// held copy (keeping a known access time), deleted for a sealed one.
    func setCopy(_ copy: OwnershipMachine.Copy, record: NamespaceRecord) async throws(NodeError) {
        try await self.setCopies([(copy, record)])
    }

    /// Records several copies as `setCopy` does, all in one transaction (one fsync).
    func setCopies(_ copies: [(OwnershipMachine.Copy, NamespaceRecord)]) async throws(NodeError) {
        guard !copies.isEmpty else { return }
        try await self.mutate { () throws(NodeError) in
            let written = copies.map { copy, record in
                var record = record
                if case .held = copy, let existing = self.state.withLock({ $0.records[record.name] }) {
                    record.lastAccessAt = max(existing.lastAccessAt, record.lastAccessAt)
                }
                return (copy, record)
            }
            do {
                try self.connection.withLock { connection throws(SQLiteError) in
                    try connection.transaction { () throws(SQLiteError) in
                        for (copy, record) in written { try Self.writeCopy(copy, record, connection) }
                    }
                }
            } catch {
                throw NodeError.io("cannot update the state database: \(error)")
            }
            self.state.withLock { state in
                state.copiesVersion += 1
                for (copy, record) in written {
                    guard case .held = copy else {
                        state.records[record.name] = nil
                        state.dirtyAccess.remove(record.name)
                        continue
                    }
                    state.records[record.name] = record
                }
            }
        }
    }

    /// One copy's rows (inside a transaction).
    private static func writeCopy(
        _ copy: OwnershipMachine.Copy,
        _ record: NamespaceRecord,
        _ connection: SQLiteConnection
    ) throws(SQLiteError) {
        let held: Bool
        switch copy {
        case .held: held = true
        case .sealed: held = false
        }
        try connection.run(
            "INSERT OR REPLACE INTO copies(name, created_at, epoch, sealed) VALUES (?, ?, ?, ?)",
            [
                .text(record.name), .integer(Int64(clamping: copy.version.createdAt)),
                .integer(Int64(clamping: copy.version.epoch)), .integer(held ? 0 : 1),
            ]
        )
        if held {
            try Self.write(record, connection)
        } else {
            try connection.run("DELETE FROM namespaces WHERE name = ?", [.text(record.name)])
        }
    }

    /// Forgets this node's copy of `name` and its registry record (the files are gone or going).
    func dropCopy(_ name: String) async throws(NodeError) {
        try await self.mutate { () throws(NodeError) in
            do {
                try self.connection.withLock { connection throws(SQLiteError) in
                    try connection.transaction { () throws(SQLiteError) in
                        try connection.run("DELETE FROM copies WHERE name = ?", [.text(name)])
                        try connection.run("DELETE FROM namespaces WHERE name = ?", [.text(name)])
                    }
                }
            } catch {
                throw NodeError.io("cannot update the state database: \(error)")
            }
            self.state.withLock { state in
                state.copiesVersion += 1
                state.records[name] = nil
                state.dirtyAccess.remove(name)
            }
        }
    }
}
