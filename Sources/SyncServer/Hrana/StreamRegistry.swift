import Foundation
import SQLiteSupport
import ServerSupport
import Synchronization

/// Hands out Hrana streams by baton, expires idle ones and pools their connections.
///
/// A baton names one stream and is valid for exactly one request: each response carries a fresh one.
/// A stream idle longer than `expiry` is closed, rolling back any transaction it left open (a client
/// that vanished mid-transaction must not hold the write lock for ever).
final class StreamRegistry: Sendable {
    struct Limits {
        var expiry: Duration = .seconds(15)
        var maxStreams = 256
        var idleConnections = 16
    }

    private struct State {
        var streams: [UInt64: HranaStream] = [:]
        var idle: [SQLiteConnection] = []
        var nextID: UInt64 = 1
        var closed = false
    }

    private let state = Mutex(State())
    private let limits: Limits
    private let openConnection: @Sendable () throws(SQLiteError) -> SQLiteConnection

    init(limits: Limits, openConnection: @escaping @Sendable () throws(SQLiteError) -> SQLiteConnection) {
        self.limits = limits
        self.openConnection = openConnection
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Takes the stream named by `baton` (or a new stream when nil) for one request. Blocking (may open
    /// a connection): call on a thread-pool thread.
    func acquire(baton: String?) throws(HranaError) -> HranaStream {
        if let baton {
            let stream = self.state.withLock { state -> HranaStream? in
                guard let id = UInt64(baton.prefix { $0 != "." }), let stream = state.streams[id], !stream.busy,
                    constantTimeEquals(stream.baton, baton)
                else { return nil }
                stream.busy = true
                return stream
            }
            guard let stream else {
                throw HranaError(message: "the baton is invalid or its stream expired", code: "STREAM_EXPIRED")
            }
            return stream
        }
        let (id, pooled) = self.state.withLock { state -> (UInt64, SQLiteConnection?) in
            let id = state.nextID
            state.nextID += 1
            return (id, state.idle.popLast())
        }
        let stream = HranaStream(id: id, connection: try self.connection(pooled: pooled))
        stream.busy = true
        // Insert, making room atomically: when full, the least recently used idle stream without a
        // transaction is closed (clients that never send `close` must not lock others out).
        let (accepted, evicted) = self.state.withLock { state -> (Bool, HranaStream?) in
            guard !state.closed else { return (false, nil) }
            var evicted: HranaStream?
            if state.streams.count >= self.limits.maxStreams {
                let candidates = state.streams.values.filter { !$0.busy && $0.connection.isAutocommit }
                guard let oldest = candidates.min(by: { ($0.lastUsed, $0.id) < ($1.lastUsed, $1.id) }) else {
                    return (false, nil)
                }
                state.streams[oldest.id] = nil
                evicted = oldest
            }
            state.streams[id] = stream
            return (true, evicted)
        }
        _ = evicted  // its connection closes here, outside the lock
        guard accepted else {
            throw HranaError(message: "too many open streams; close streams or retry later", code: "STREAM_LIMIT")
        }
        return stream
    }

    /// Ends a request on `stream`: returns its next baton, or nil when the stream was closed.
    func release(_ stream: HranaStream, close: Bool) -> String? {
        if close {
            stream.rollbackIfNeeded()
            self.state.withLock { state in
                state.streams[stream.id] = nil
                stream.busy = false
                self.pool(stream.connection, in: &state)
            }
            return nil
        }
        let baton = "\(stream.id).\(randomToken())"
        self.state.withLock { _ in
            stream.baton = baton
            stream.lastUsed = Self.now()
            stream.busy = false
        }
        return baton
    }

    /// Closes streams idle past the expiry, rolling back their transactions. Blocking.
    func expireIdle() {
        let deadline = Self.now() &- UInt64(self.limits.expiry.components.seconds) * 1_000_000_000
        let expired = self.state.withLock { state -> [HranaStream] in
            let victims = state.streams.values.filter { !$0.busy && $0.lastUsed < deadline }
            for stream in victims { state.streams[stream.id] = nil }
            return victims
        }
        for stream in expired { stream.rollbackIfNeeded() }
    }

    /// Rolls back and drops every stream (shutdown).
    func closeAll() {
        let all = self.state.withLock { state -> [HranaStream] in
            state.closed = true
            let all = Array(state.streams.values)
            state.streams.removeAll()
            state.idle.removeAll()
            return all
        }
        for stream in all where !stream.busy { stream.rollbackIfNeeded() }
    }

    /// A pooled connection with a read transaction open (for a pull, from planning to its last byte):
    /// while it is open no checkpoint, this process's or another's, can reset the WAL or copy frames
    /// past its snapshot into the main file. Blocking: call on a thread-pool thread.
    func beginRead() throws(HranaError) -> ReadTransaction {
        let connection = try self.connection(pooled: self.state.withLock { $0.idle.popLast() })
        do {
            try connection.execute("BEGIN; SELECT count(*) FROM sqlite_schema")
        } catch {
            throw HranaError(error)
        }
        return ReadTransaction(connection: connection, registry: self)
    }

    /// Ends a pull's read transaction and pools its connection. Blocking.
    fileprivate func endRead(_ connection: SQLiteConnection) {
        if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
        self.state.withLock { self.pool(connection, in: &$0) }
    }

    /// `pooled`, or a new connection when the pool was empty. Blocking.
    private func connection(pooled: SQLiteConnection?) throws(HranaError) -> SQLiteConnection {
        if let pooled { return pooled }
        do {
            return try self.openConnection()
        } catch {
            throw HranaError(error)
        }
    }

    /// Keeps `connection` for reuse when the pool has room and the connection is clean (no
    /// transaction, no setting a client changed). Call under the lock.
    private func pool(_ connection: SQLiteConnection, in state: inout State) {
        guard state.idle.count < self.limits.idleConnections, !state.closed, connection.isAutocommit,
            SQLGuard.isPristine(connection)
        else { return }
        state.idle.append(connection)
    }

    /// Whether the stream `baton` names has a transaction open: its next request continues it, so a
    /// checkpoint waiting for that transaction must let it in.
    func isInTransaction(baton: String?) -> Bool {
        guard let baton, let id = UInt64(baton.prefix { $0 != "." }) else { return false }
        return self.state.withLock { state in state.streams[id].map { !$0.connection.isAutocommit } ?? false }
    }

    /// Whether any stream has a transaction open (a checkpoint waits for it to end).
    var anyInTransaction: Bool {
        self.state.withLock { state in state.streams.values.contains { !$0.connection.isAutocommit } }
    }

    var openStreams: Int { self.state.withLock { $0.streams.count } }
}

func randomToken() -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<2).map { _ in String(generator.next() as UInt64, radix: 36) }.joined()
}

/// A pull's read transaction (see `StreamRegistry.beginRead`); ended by `end()` or when released.
final class ReadTransaction: Sendable {
    private let connection: Mutex<SQLiteConnection?>
    private let registry: StreamRegistry

    fileprivate init(connection: SQLiteConnection, registry: StreamRegistry) {
        self.connection = Mutex(connection)
        self.registry = registry
    }

    func end() {
        if let connection = self.connection.withLock({ $0.take() }) { self.registry.endRead(connection) }
    }

    deinit { self.end() }
}
