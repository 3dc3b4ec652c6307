import Foundation
import SQLiteSupport
import Testing

@testable import SyncServer

/// Builds real WAL files with libsqlite3, then checks the index against them, including torn and
/// uncommitted frames.
@Suite("WAL index")
struct WALIndexTests {
    let directory: String

    init() throws {
        self.directory = NSTemporaryDirectory() + "walindex-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    /// A database with `transactions` committed transactions, left open (WAL intact).
    func makeDatabase(transactions: Int) throws -> (SQLiteConnection, String) {
        let path = self.directory + "/db.db"
        let connection = try SQLiteConnection(path: path)
        try connection.disableCheckpoints()
        try connection.execute("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t(x)")
        for i in 0..<transactions { try connection.run("INSERT INTO t VALUES (?)", [.integer(Int64(i))]) }
        return (connection, path)
    }

    func copyWAL(_ path: String, to name: String, truncateBy: Int = 0) throws -> FileReader {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path + "-wal"))
        bytes.removeLast(truncateBy)
        let target = self.directory + "/" + name
        try bytes.write(to: URL(fileURLWithPath: target))
        return FileReader(path: target)!
    }

    @Test func indexesEveryCommit() throws {
        let (connection, path) = try self.makeDatabase(transactions: 5)
        var index = WALIndex()
        let changed = index.refresh(from: FileReader(path: path + "-wal")!)
        #expect(changed)
        // CREATE TABLE and five inserts: six commits, at least one frame each.
        #expect(index.committedFrames >= 6)
        #expect(index.latestRevision.frame == index.committedFrames)
        #expect(index.contains(index.latestRevision))
        #expect(index.databaseSize(atFrame: index.committedFrames) == 2)
        // A second refresh with nothing new changes nothing.
        let unchanged = index.refresh(from: FileReader(path: path + "-wal")!)
        #expect(!unchanged)
        try connection.run("INSERT INTO t VALUES (99)")
        let before = index.latestRevision
        let grew = index.refresh(from: FileReader(path: path + "-wal")!)
        #expect(grew)
        #expect(index.latestRevision.frame > before.frame)
        #expect(index.contains(before))
        #expect(index.changedPages(after: before.frame, upTo: index.latestRevision.frame).keys.contains(2))
    }

    @Test func tornFrameEndsTheIndexAtThePreviousCommit() throws {
        let (_, path) = try self.makeDatabase(transactions: 3)
        var full = WALIndex()
        _ = full.refresh(from: FileReader(path: path + "-wal")!)
        var torn = WALIndex()
        _ = torn.refresh(from: try self.copyWAL(path, to: "torn-wal", truncateBy: 100))
        #expect(torn.committedFrames == full.committedFrames - 1)
        #expect(!torn.contains(full.latestRevision))
    }

    @Test func uncommittedAndCorruptFramesAreNotServed() throws {
        let (_, path) = try self.makeDatabase(transactions: 2)
        var index = WALIndex()
        let reader = try self.copyWAL(path, to: "spill-wal")
        _ = index.refresh(from: reader)
        let committed = index.committedFrames
        let header = index.header!
        // Append a checksum-valid frame without the commit flag (a rolled-back or in-progress write).
        var wal = try Data(contentsOf: URL(fileURLWithPath: reader.path))
        let frameSize = 24 + 4096
        let lastFrame = wal.suffix(frameSize)
        var frame = [UInt8](lastFrame)
        frame.replaceSubrange(4..<8, with: [0, 0, 0, 0])
        var checksum = index.latestRevision.checksum
        frame.withUnsafeBytes { raw in
            checksum.update(UnsafeRawBufferPointer(rebasing: raw[0..<8]), bigEndian: header.bigEndianChecksum)
            checksum.update(UnsafeRawBufferPointer(rebasing: raw[24...]), bigEndian: header.bigEndianChecksum)
        }
        frame.replaceSubrange(16..<24, with: bigEndianBytes(checksum.s1) + bigEndianBytes(checksum.s2))
        wal.append(contentsOf: frame)
        // And after it a commit frame with a wrong checksum.
        var corrupt = [UInt8](lastFrame)
        corrupt[100] ^= 0xFF
        wal.append(contentsOf: corrupt)
        try wal.write(to: URL(fileURLWithPath: reader.path))
        let refreshed = index.refresh(from: reader)
        #expect(!refreshed)
        #expect(index.committedFrames == committed)
    }

    @Test func lineageRejectsOtherHistories() throws {
        let (_, path) = try self.makeDatabase(transactions: 3)
        var index = WALIndex()
        _ = index.refresh(from: FileReader(path: path + "-wal")!)
        let latest = index.latestRevision
        var otherChecksum = latest
        otherChecksum.checksum.s2 &+= 1
        var otherSalt = latest
        otherSalt.salt1 &+= 1
        var future = latest
        future.frame += 10
        #expect(index.contains(latest))
        #expect(!index.contains(otherChecksum))
        #expect(!index.contains(otherSalt))
        #expect(!index.contains(future))
        #expect(!index.contains(Revision.noWAL))
    }

    @Test func pageSourceServesSnapshotsFromMainFileAndWAL() throws {
        // Data in the main file (written in rollback mode), then more in the WAL.
        let path = self.directory + "/mixed.db"
        do {
            let setup = try SQLiteConnection(path: path)
            try setup.execute("PRAGMA page_size=4096; CREATE TABLE t(x); INSERT INTO t VALUES ('main')")
        }
        let connection = try SQLiteConnection(path: path)
        try connection.disableCheckpoints()
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.run("INSERT INTO t VALUES ('wal')")
        let source = try PageSource(databasePath: path)
        var request = PullUpdatesRequest()
        let bootstrap = try source.plan(request)
        #expect(bootstrap.isFullSnapshot)
        #expect(bootstrap.databaseSizePages == bootstrap.pages.count)
        #expect(bootstrap.pages.contains { if case .main = $0.location { true } else { false } })
        #expect(bootstrap.pages.contains { if case .wal = $0.location { true } else { false } })
        // Incremental from the bootstrap revision: nothing new, then one page after a write.
        request.clientRevision = bootstrap.revision.description
        #expect(try source.plan(request).pages.isEmpty)
        try connection.run("INSERT INTO t VALUES ('more')")
        let delta = try source.plan(request)
        #expect(!delta.isFullSnapshot)
        #expect(delta.pages.map(\.pageID) == [1])
        // A revision from another history gets the full snapshot.
        request.clientRevision = "0000000100000002-0000000300000004:1"
        #expect(try source.plan(request).isFullSnapshot)
        // A selector limits the pages.
        request.clientRevision = ""
        request.serverPagesSelector = RoaringBitmap(values: [0]).portableBytes()
        #expect(try source.plan(request).pages.map(\.pageID) == [0])
    }
}

private func bigEndianBytes(_ value: UInt32) -> [UInt8] {
    [
        UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8),
        UInt8(truncatingIfNeeded: value),
    ]
}
