import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SQLiteSupport
import Synchronization

/// The built-in backend: serves one database over the Turso sync protocol (`/pull-updates`) and
/// Hrana over HTTP (`/v2/pipeline`, `/v3/pipeline`, `/v3/cursor`), and checkpoints when its node asks
/// (`POST /_turso/checkpoint`).
public final class SyncService: Sendable {
    let configuration: SyncServerConfiguration
    let logger: Logger
    let database: SyncDatabase
    let pages: PageSource
    let streams: StreamRegistry
    let threads: NIOThreadPool
    let changes = ChangeNotifier()
    let writeLock = WriteLock()
    let barrier = CheckpointBarrier()
    /// A checkpoint the node prepared (barrier held, nothing in flight) and has not finished: its
    /// token, until the watchdog opens the barrier again.
    let heldCheckpoint = Mutex<UInt64?>(nil)
    /// Kept open for the process lifetime: the first connection, so the database never has zero
    /// connections while serving (and for nothing else).
    private let anchor: SQLiteConnection
    /// The anchor's handle, for the node-requested checkpoint (the one other use of that connection).
    var anchorHandle: OpaquePointer { self.anchor.handle }

    public init(configuration: SyncServerConfiguration, logger: Logger) throws(SyncServerError) {
        self.configuration = configuration
        self.logger = logger
        let database = SyncDatabase(path: configuration.databasePath, synchronousFull: configuration.synchronousFull)
        self.database = database
        self.anchor = try database.prepare()
        do {
            self.pages = try PageSource(databasePath: configuration.databasePath, logger: logger)
        } catch {
            throw .unsupportedDatabase(error.message)
        }
        self.pages.refresh()
        self.streams = StreamRegistry(limits: .init(expiry: configuration.streamExpiry)) { () throws(SQLiteError) in
            try database.open()
        }
        self.threads = NIOThreadPool(numberOfThreads: configuration.sqliteThreads)
        self.threads.start()
    }

    /// Binds and serves until cancelled. Calls `onBound` with the bound port once listening.
    public func run(onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let server = HTTPServer(
            host: self.configuration.host,
            port: self.configuration.port,
            maxBodyBytes: self.configuration.maxBodyBytes,
            secret: self.configuration.secret,
            logger: self.logger
        ) { request in
            await self.handle(request)
        }
        let listener: NIOAsyncChannel<HTTPServer.Connection, Never>
        do {
            listener = try await server.bind()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw SyncServerError.addressInUse(
                "cannot listen on \(self.configuration.host):\(self.configuration.port): \(error)"
            )
        } catch {
            throw SyncServerError.bind(
                "cannot listen on \(self.configuration.host):\(self.configuration.port): \(error)"
            )
        }
        onBound(listener.channel.localAddress?.port ?? self.configuration.port)
        self.logger.info(
            "sync server listening",
            metadata: [
                "sync.address": "\(self.configuration.host):\(listener.channel.localAddress?.port ?? 0)",
                "sync.database": "\(self.configuration.databasePath)",
                "sync.revision": "\(self.pages.refresh())",
            ]
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve(listener) }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    try? await self.threads.runIfActive { self.streams.expireIdle() }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Rolls back open streams before exit.
    public func shutdown() async {
        try? await self.threads.runIfActive { self.streams.closeAll() }
        try? await self.threads.shutdownGracefully()
    }

    // MARK: routing

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.path
        switch (request.method, path) {
        case (.POST, "/pull-updates"):
            return await self.pullUpdates(request)
        case (.POST, "/v2/pipeline"), (.POST, "/v3/pipeline"):
            return await self.pipeline(request)
        case (.POST, "/v3/cursor"):
            return await self.cursor(request)
        case (.POST, Self.checkpointPath):
            return await self.checkpointRequest(request)
        case (.GET, "/v2"), (.GET, "/v3"), (.GET, "/health"):
            return HTTPResponse(status: .ok, contentType: "text/plain", body: .bytes([]))
        case (_, "/pull-updates"), (_, "/v2/pipeline"), (_, "/v3/pipeline"), (_, "/v3/cursor"),
            (_, Self.checkpointPath):
            return .error(.methodNotAllowed, "\(request.method) is not allowed on \(path)", code: "METHOD_NOT_ALLOWED")
        default:
            return .error(.notFound, "no route for \(request.method) \(path)", code: "NOT_FOUND")
        }
    }
}

/// Wakes long-polling pulls when this process commits a write; external writers are noticed by polling.
final class ChangeNotifier: Sendable {
    private enum Waiter {
        case waiting(CheckedContinuation<Void, Never>)
        case timedOut
    }

    private let waiters = Mutex<[UInt64: Waiter]>([:])
    private let counter = Atomic<UInt64>(0)

    func notify() {
        let all = self.waiters.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            var ready: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in waiters {
                if case .waiting(let continuation) = waiter {
                    ready.append(continuation)
                    waiters[id] = nil
                }
            }
            return ready
        }
        for waiter in all { waiter.resume() }
    }

    /// Waits until `notify()` or `timeout`, whichever comes first.
    func wait(timeout: Duration) async {
        let id = self.counter.add(1, ordering: .relaxed).newValue
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let expired = self.waiters.withLock { waiters -> Bool in
                        if case .timedOut = waiters[id] {
                            waiters[id] = nil
                            return true
                        }
                        waiters[id] = .waiting(continuation)
                        return false
                    }
                    if expired { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                let waiter = self.waiters.withLock { waiters -> Waiter? in
                    let waiter = waiters[id]
                    waiters[id] = waiter == nil ? .timedOut : nil
                    return waiter
                }
                if case .waiting(let continuation) = waiter { continuation.resume() }
            }
            await group.next()
            group.cancelAll()
        }
        self.waiters.withLock { waiters in
            if case .timedOut = waiters[id] { waiters[id] = nil }
        }
    }
}
