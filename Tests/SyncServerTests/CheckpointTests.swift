import Foundation
import Logging
import SQLiteSupport
import Testing

@testable import SyncServer

/// A file's size, 0 when it does not exist.
private func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}

/// Checkpoints on a real database: the WAL is truncated, revisions survive, and a client at any
/// retained revision that applies the incremental answer ends byte-identical to a full snapshot.
@Suite("Checkpoints")
struct CheckpointTests {
    let directory: String
    let path: String

    init() throws {
        self.directory = NSTemporaryDirectory() + "checkpoint-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        self.path = self.directory + "/db.db"
    }

    func makeService() throws -> SyncService {
        var configuration = SyncServerConfiguration()
        configuration.databasePath = self.path
        configuration.port = 0
        configuration.sqliteThreads = 2
        return try SyncService(configuration: configuration, logger: Logger(label: "test"))
    }

    func write(_ connection: SQLiteConnection, _ rows: Range<Int>) throws {
        for i in rows {
            try connection.run(
                "INSERT INTO t VALUES (?, ?)",
                [.integer(Int64(i)), .text(String(repeating: "v\(i)", count: 40))]
            )
        }
    }

    func plan(_ service: SyncService, client: String = "", pinned: String = "") throws -> PullPlan {
        var request = PullUpdatesRequest()
        request.clientRevision = client
        request.serverRevision = pinned
        return try service.pages.plan(request)
    }

    /// The database image a client holds after applying `plan` to `image`.
    func apply(_ plan: PullPlan, to image: [UInt8], service: SyncService) -> [UInt8] {
        var image = image
        let size = plan.databaseSizePages * PageSource.pageSize
        if image.count < size { image += [UInt8](repeating: 0, count: size - image.count) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PageSource.pageSize, alignment: 16)
        defer { buffer.deallocate() }
        for page in plan.pages {
            service.pages.read(page.location, into: buffer)
            let offset = Int(page.pageID) * PageSource.pageSize
            image.replaceSubrange(offset..<(offset + PageSource.pageSize), with: buffer)
        }
        return Array(image.prefix(size))
    }

    @Test func incrementalPullsAcrossSeveralCheckpointsMatchAFullSnapshot() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        // Pages no later commit touches: an incremental answer must not send them.
        try connection.execute(
            "CREATE TABLE s(v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO s SELECT printf('%01000d', i) FROM n"
        )
        try self.write(connection, 0..<20)
        // Clients at several points of the history, each with the image it would hold.
        var clients: [(revision: String, image: [UInt8])] = []
        func snapshotClient() throws {
            let full = try self.plan(service)
            clients.append((full.revision.description, self.apply(full, to: [], service: service)))
        }
        try snapshotClient()
        for round in 0..<4 {
            try self.write(connection, (100 * (round + 1))..<(100 * (round + 1) + 30))
            try snapshotClient()
            let before = service.pages.refresh()
            guard case .done(let result) = await service.checkpoint() else {
                Issue.record("checkpoint did not complete")
                return
            }
            #expect(result.retiredCommits == 30 + (round == 0 ? 23 : 1))
            #expect(fileSize(self.path + "-wal") == 0)
            // The revision names the same commit after the reset.
            #expect(result.revision.sequence == before.sequence)
            try connection.run("UPDATE t SET v = 'x' WHERE id = ?", [.integer(Int64(round))])
        }
        try connection.run("DELETE FROM t WHERE id >= 300")
        let full = try self.plan(service)
        #expect(full.isFullSnapshot)
        let truth = self.apply(full, to: [], service: service)
        for client in clients {
            let delta = try self.plan(service, client: client.revision)
            #expect(!delta.isFullSnapshot, "client at \(client.revision) got a full snapshot")
            #expect(delta.pages.count < full.pages.count)
            #expect(self.apply(delta, to: client.image, service: service) == truth, "client at \(client.revision)")
        }
        // The files agree with what was served: the served image is the database's content.
        #expect(try SQLiteConnection(path: self.path).query("SELECT count(*) FROM t").first?.first == .integer(80))
        await service.shutdown()
    }

    @Test func aRevisionFromAnotherLineageOrBeforeTheFloorGetsAFullSnapshot() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try self.write(connection, 0..<5)
        let latest = service.pages.refresh()
        var foreign = latest
        foreign.lineage ^= 1
        #expect(try self.plan(service, client: foreign.description).isFullSnapshot)
        var future = latest
        future.sequence += 1
        #expect(try self.plan(service, client: future.description).isFullSnapshot)
        var diverged = latest
        diverged.checksum = (diverged.checksum ?? 0) ^ 1
        #expect(try self.plan(service, client: diverged.description).isFullSnapshot)
        #expect(try !self.plan(service, client: latest.description).isFullSnapshot)
        await service.shutdown()
    }

    @Test func revisionsOfTheEarlierFormKeepWorkingInTheirGeneration() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try self.write(connection, 0..<5)
        var index = WALIndex()
        _ = index.refresh(from: FileReader(path: self.path + "-wal")!)
        let legacy = index.latestRevision.description
        try self.write(connection, 5..<8)
        let delta = try self.plan(service, client: legacy)
        #expect(!delta.isFullSnapshot)
        #expect(!delta.pages.isEmpty)
        // After a checkpoint its generation is gone: a clean full snapshot, never a wrong page set.
        guard case .done = await service.checkpoint() else {
            Issue.record("checkpoint did not complete")
            return
        }
        #expect(try self.plan(service, client: legacy).isFullSnapshot)
        await service.shutdown()
    }

    @Test func anOpenTransactionDefersTheCheckpoint() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        let stream = try service.streams.acquire(baton: nil)
        try stream.connection.execute("BEGIN; INSERT INTO t VALUES (1, 'open')")
        let baton = service.streams.release(stream, close: false)
        #expect(service.streams.isInTransaction(baton: baton))
        guard case .busy = await service.checkpoint(waitingAtMost: .milliseconds(50)) else {
            Issue.record("a checkpoint ran under an open transaction")
            return
        }
        #expect(fileSize(self.path + "-wal") > 0)
        let again = try service.streams.acquire(baton: baton)
        try again.connection.execute("COMMIT")
        _ = service.streams.release(again, close: true)
        guard case .done = await service.checkpoint(waitingAtMost: .milliseconds(50)) else {
            Issue.record("the checkpoint did not run once the transaction ended")
            return
        }
        await service.shutdown()
    }

    @Test func aGenerationRecordedButNotResetIsDroppedOnRestart() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try self.write(connection, 0..<5)
        let before = service.pages.refresh()
        // The WAL reset fails (as if the process died between the record and the reset).
        #expect(throws: PullError.self) {
            _ = try service.pages.checkpoint(retention: .init(), nowMilliseconds: 0) { "simulated" }
        }
        #expect(service.pages.refresh() == before)
        // A crash leaves the record on disk: write one by hand, then reopen.
        var index = WALIndex()
        _ = index.refresh(from: FileReader(path: self.path + "-wal")!)
        let header = try #require(index.header)
        let file = try ChangeHistoryFile(path: ChangeHistoryFile.path(forDatabase: self.path))
        try file.append(
            ChangeHistory.generation(
                salt1: header.salt1,
                salt2: header.salt2,
                startSequence: 0,
                pagesByCommit: index.pagesByCommit(),
                checksums: index.checksumsByCommit,
                retiredAtMilliseconds: 0
            )
        )
        let reopened = try PageSource(databasePath: self.path)
        #expect(reopened.refresh() == before)
        #expect(try ChangeHistoryFile(path: ChangeHistoryFile.path(forDatabase: self.path)).history.generations.isEmpty)
        await service.shutdown()
    }

    @Test func aPullsReadTransactionKeepsOtherProcessesFromResettingTheWAL() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try self.write(connection, 0..<5)
        let read = try service.streams.beginRead()
        // Another process's checkpoint (what the sqlite3 CLI does when it closes last).
        let other = try SQLiteConnection(path: self.path, busyTimeoutMilliseconds: 50)
        try other.disableCheckpoints()
        let blocked = try other.query("PRAGMA wal_checkpoint(TRUNCATE)")
        #expect(blocked.first?.first == .integer(1))
        #expect(fileSize(self.path + "-wal") > 0)
        read.end()
        let done = try other.query("PRAGMA wal_checkpoint(TRUNCATE)")
        #expect(done.first?.first == .integer(0))
        #expect(fileSize(self.path + "-wal") == 0)
        await service.shutdown()
    }

    /// A checkpoint that copied the WAL but could not reset it (another process was reading) keeps
    /// its record, provisionally; when SQLite restarts the WAL in place at the next write, the
    /// generation counts as retired and clients keep pulling incrementally.
    @Test func aCheckpointBlockedByAnotherReaderRetiresItsGenerationWhenTheWALRestarts() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try self.write(connection, 0..<10)
        let before = service.pages.refresh()
        let full = try self.plan(service)
        let image = self.apply(full, to: [], service: service)
        let reader = try SQLiteConnection(path: self.path)
        try reader.execute("BEGIN; SELECT count(*) FROM t")
        guard case .busy = await service.checkpoint() else {
            Issue.record("the checkpoint reset the WAL under another process's reader")
            return
        }
        #expect(service.pages.refresh() == before)
        #expect(try !self.plan(service, client: before.description).isFullSnapshot)
        try reader.execute("COMMIT")
        // The next write restarts the WAL in place (everything was copied into the main file).
        try self.write(connection, 10..<11)
        let after = service.pages.refresh()
        #expect(after.lineage == before.lineage)
        #expect(after.sequence == before.sequence + 1)
        let delta = try self.plan(service, client: before.description)
        #expect(!delta.isFullSnapshot)
        #expect(
            self.apply(delta, to: image, service: service)
                == self.apply(try self.plan(service), to: [], service: service)
        )
        await service.shutdown()
    }

    /// Another process checkpointing behind the backend's back: the generation's pages were never
    /// recorded, so the history starts a new lineage and clients resync rather than miss them.
    @Test func aGenerationRetiredBehindTheBackendsBackStartsANewLineage() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try self.write(connection, 0..<10)
        let before = service.pages.refresh()
        let other = try SQLiteConnection(path: self.path)
        _ = try other.query("PRAGMA wal_checkpoint(TRUNCATE)")
        try self.write(connection, 10..<11)
        let after = service.pages.refresh()
        #expect(after.lineage != before.lineage)
        #expect(try self.plan(service, client: before.description).isFullSnapshot)
        await service.shutdown()
    }

    /// A copy of the database file taken at some point, patched with the pages the history names
    /// since its base, is byte-identical to the database file after later checkpoints.
    @Test func aStaleDatabaseCopyCatchesUpPageByPage() async throws {
        let service = try self.makeService()
        let connection = try service.database.open()
        try connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        try connection.execute(
            "CREATE TABLE s(v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO s SELECT printf('%01000d', i) FROM n"
        )
        guard case .done = await service.checkpoint() else {
            Issue.record("checkpoint did not complete")
            return
        }
        let base = try #require(DatabaseFileDelta.base(databasePath: self.path))
        let copy = try Data(contentsOf: URL(fileURLWithPath: self.path))
        for round in 0..<3 {
            try self.write(connection, (round * 50)..<(round * 50 + 50))
            try connection.execute("DELETE FROM s WHERE rowid BETWEEN \(round * 20) AND \(round * 20 + 5)")
            guard case .done = await service.checkpoint() else {
                Issue.record("checkpoint did not complete")
                return
            }
        }
        // Pages written since the last checkpoint stay in the WAL: the database file is what moves.
        try self.write(connection, 500..<510)
        let pages = try #require(DatabaseFileDelta.pagesChanged(databasePath: self.path, since: base))
        let final = try Data(contentsOf: URL(fileURLWithPath: self.path))
        #expect(pages.count < final.count / 4096)
        var patched = copy
        for page in pages where Int(page) * 4096 <= final.count {
            let range = Int(page - 1) * 4096..<Int(page) * 4096
            if patched.count < range.upperBound { patched.append(Data(count: range.upperBound - patched.count)) }
            patched.replaceSubrange(range, with: final[range])
        }
        patched = patched.prefix(final.count)
        #expect(patched == final)
        // Another lineage, or a base older than the history, cannot be caught up.
        #expect(
            DatabaseFileDelta.pagesChanged(
                databasePath: self.path,
                since: .init(lineage: base.lineage ^ 1, sequence: base.sequence)
            ) == nil
        )
        await service.shutdown()
    }
}
