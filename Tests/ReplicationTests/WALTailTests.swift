import Foundation
import SQLiteSupport
import Testing

@testable import Replication

/// The committed end of real SQLite WALs, read incrementally or checked as shipments.
@Suite("WAL tail")
struct WALTailTests {
    /// A WAL of `transactions` commits written by SQLite (autocheckpoint off), as bytes.
    static func wal(transactions: Int, pageSize: Int = 4096) throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let connection = try SQLiteConnection(path: directory + "/a.db")
        try connection.execute(
            "PRAGMA page_size=\(pageSize); PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x BLOB)"
        )
        for index in 0..<transactions {
            try connection.execute("INSERT INTO t VALUES (randomblob(\(100 + (index * 977) % 9000)))")
        }
        return Array(FileManager.default.contents(atPath: directory + "/a.db-wal") ?? Data())
    }

    static func tail(of bytes: [UInt8], size: Int? = nil) -> WALTail {
        var tail = WALTail()
        let size = size ?? bytes.count
        tail.advance(size: size) { offset, count in Array(bytes[offset..<min(offset + count, size)]) }
        return tail
    }

    @Test func theTailEndsAtTheLastCommitHoweverTheFileIsRead() throws {
        let bytes = try Self.wal(transactions: 40)
        let whole = Self.tail(of: bytes)
        #expect(whole.position.offset == bytes.count)
        #expect(whole.commits.count == 42)  // the header's end, the CREATE TABLE and 40 inserts
        #expect(whole.databasePages > 1)
        // Read as it grows, one frame more each time: the same tail.
        var growing = WALTail()
        let frameSize = whole.header!.frameSize
        for size in [0] + Array(stride(from: WALHeader.size, through: bytes.count, by: frameSize)) {
            growing.advance(size: size) { offset, count in Array(bytes[offset..<min(offset + count, size)]) }
            #expect(growing.position.offset <= size)
            if size > 0 { #expect(growing.commits[growing.position.offset] == growing.position.checksum) }
        }
        #expect(growing.position == whole.position && growing.commits == whole.commits)
        // A torn last frame: the end is the commit before it.
        let torn = Self.tail(of: bytes, size: bytes.count - 100)
        #expect(torn.position.offset < bytes.count && whole.commits[torn.position.offset] == torn.position.checksum)
        // A flipped byte in a frame: nothing from that frame on counts.
        var damaged = bytes
        damaged[bytes.count / 2] ^= 1
        let cut = Self.tail(of: damaged)
        #expect(cut.position.offset <= bytes.count / 2)
        // A reset (a new header) starts over; no header is an empty tail.
        var reset = whole
        reset.advance(size: 0) { _, _ in [] }
        #expect(reset.position == .empty && reset.header == nil)
    }

    @Test func shipmentsContinueACopyOnlyWithWholeCommittedFrames() throws {
        let bytes = try Self.wal(transactions: 30)
        let whole = Self.tail(of: bytes)
        let ends = whole.commits.keys.sorted()
        var copy = WALTail()
        var at = 0
        // From an empty copy: the header and frames, then pieces ending at commits.
        for end in ends.filter({ $0 > WALHeader.size }).enumerated().filter({ $0.offset % 4 == 3 }).map(\.element)
            + [bytes.count]
        where end > at {
            copy = try copy.appending(Array(bytes[at..<end]))
            #expect(copy.position.offset == end && copy.position.checksum == whole.commits[end])
            at = end
        }
        #expect(copy.position == whole.position)
        let frameSize = whole.header!.frameSize
        let start = ends[ends.count - 3]
        let resumed = WALTail(
            header: whole.header!,
            position: WALPosition(
                generation: whole.position.generation,
                offset: start,
                checksum: whole.commits[start]!
            ),
            databasePages: 0
        )
        let piece = Array(bytes[start...])
        #expect(try resumed.appending(piece).position == whole.position)
        // Not whole frames, an unfinished transaction, damaged bytes, another copy's position.
        #expect(throws: ReplicationError.self) { try resumed.appending(Array(piece.dropLast(7))) }
        if piece.count > frameSize, whole.commits[bytes.count - frameSize] == nil {
            #expect(throws: ReplicationError.self) { try resumed.appending(Array(piece.dropLast(frameSize))) }
        }
        for index in stride(from: 0, to: piece.count, by: 997) {
            var damaged = piece
            damaged[index] ^= 0x10
            #expect(throws: ReplicationError.self, "byte \(index)") { try resumed.appending(damaged) }
        }
        let elsewhere = WALTail(
            header: whole.header!,
            position: WALPosition(generation: whole.position.generation, offset: start, checksum: .zero),
            databasePages: 0
        )
        #expect(throws: ReplicationError.self) { try elsewhere.appending(piece) }
        #expect(throws: ReplicationError.self) { try WALTail().appending(Array(bytes[WALHeader.size...])) }
    }

    @Test func theNewestVersionOfEveryPageIsFound() throws {
        let bytes = try Self.wal(transactions: 25, pageSize: 1024)
        let tail = Self.tail(of: bytes)
        let pages = tail.newestPages { offset, count in Array(bytes[offset..<min(offset + count, bytes.count)]) }
        let frameSize = tail.header!.frameSize
        var expected: [UInt32: Int] = [:]
        for frame in stride(from: WALHeader.size, to: tail.position.offset, by: frameSize) {
            let number = bytes[frame..<(frame + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            expected[number] = frame + WALHeader.frameHeaderSize
        }
        #expect(pages == expected && pages.count > 2)
    }
}
