import Foundation
import Replication
import SQLiteSupport
import Testing

@testable import Node

/// A follower's copy, fed from a real SQLite WAL: appended at commit boundaries, retired as the
/// owner's `wal_checkpoint(TRUNCATE)` retires it, it holds the owner's bytes exactly.
@Suite("Replica copies")
struct ReplicaCopiesTests {
    static func withDirectory(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("replica-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }

    static func bytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

    /// The owner's WAL tail now.
    static func tail(_ wal: String) -> WALTail {
        var tail = WALTail()
        tail.advance(size: NamespaceFiles.size(wal)) { offset, count in
            ReplicaCopies.read(wal, at: offset, count: count)
        }
        return tail
    }

    static func write(_ connection: SQLiteConnection, rows: Range<Int>) throws {
        for row in rows {
            try connection.execute(
                "INSERT INTO t(id, body) VALUES (\(row), randomblob(\(200 + row % 3000))); UPDATE t SET body = randomblob(50) WHERE id = \(row / 2)"
            )
        }
    }

    @Test func aFollowerHoldsTheOwnersBytesAcrossAppendsAndCheckpoints() throws {
        try Self.withDirectory { directory in
            let database = directory + "/owner.db"
            let wal = database + "-wal"
            let owner = try SQLiteConnection(path: database)
            try owner.execute(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)"
            )
            try Self.write(owner, rows: 0..<20)
            let copies = ReplicaCopies(dataDirectory: directory)
            // A full copy first: the database file and the WAL up to a commit.
            var tail = Self.tail(wal)
            let walBytes = Self.bytes(wal)
            var copy = try copies.install(
                "app",
                database: Self.bytes(database)[...],
                wal: walBytes[..<tail.position.offset],
                history: [][...]
            )
            #expect(copy.position == tail.position)
            // Then transactions, shipped in pieces that end at commits.
            for round in 0..<3 {
                try Self.write(owner, rows: (100 * (round + 1))..<(100 * (round + 1) + 30))
                tail = Self.tail(wal)
                let all = Self.bytes(wal)
                let middle = tail.commits.keys.filter { $0 > copy.position.offset && $0 < tail.position.offset }
                    .sorted()
                for end in middle.prefix(2) + [tail.position.offset] {
                    let position = try copies.append(
                        "app",
                        Array(all[copy.position.offset..<end]),
                        after: copy.position
                    )
                    copy.position = position
                }
                #expect(copy.position == tail.position)
                #expect(Self.bytes(copies.path("app", .wal)) == Array(all[..<tail.position.offset]))
                // A shipment that does not continue the copy is refused, and changes nothing.
                #expect(throws: NodeError.self) {
                    try copies.append("app", Array(all[32..<(32 + 4120)]), after: copy.position)
                }
                var corrupt = Array(all[(tail.position.offset - 4120)..<tail.position.offset])
                corrupt[100] ^= 0xff
                let behind = WALPosition(
                    generation: tail.position.generation,
                    offset: tail.position.offset - 4120,
                    checksum: tail.commits[tail.position.offset - 4120] ?? .zero
                )
                #expect(throws: NodeError.self) { try copies.append("app", corrupt, after: behind) }
                // The owner checkpoints; the follower retires the same generation.
                let end = tail.position
                _ = try owner.query("PRAGMA wal_checkpoint(TRUNCATE)")
                #expect(NamespaceFiles.size(wal) == 0)
                copy = try copies.retire("app", end: end, history: Array("h\(round)".utf8))
                #expect(Self.bytes(copies.path("app", .db)) == Self.bytes(database), "round \(round)")
                #expect(NamespaceFiles.size(copies.path("app", .wal)) == 0)
                #expect(copy.base == ReplicaCopies.digest(Array("h\(round)".utf8)))
                // Retiring again (a crash before the answer) is refused: the copy moved on.
                #expect(throws: NodeError.self) { try copies.retire("app", end: end, history: []) }
                let base = ReplicaCopies.digest(Array("h\(round)".utf8))
                #expect(
                    ShipmentPlan.next(
                        tail: Self.tail(wal),
                        base: base,
                        retired: .init(end: end),
                        copy: try copies.copy("app")
                    )
                        == .upToDate
                )
            }
            // A new generation starts from its header.
            try Self.write(owner, rows: 1000..<1010)
            tail = Self.tail(wal)
            #expect(
                ShipmentPlan.next(tail: tail, base: "other", retired: nil, copy: try copies.copy("app")) == .install
            )
            #expect(
                ShipmentPlan.next(
                    tail: tail,
                    base: ReplicaCopies.digest(Array("h2".utf8)),
                    retired: nil,
                    copy: try copies.copy("app")
                )
                    == .append(from: 0)
            )
            let position = try copies.append("app", Array(Self.bytes(wal)[..<tail.position.offset]), after: .empty)
            #expect(position == tail.position)
            // Reopened (a restart), the copy reads its position back from its files.
            let reopened = ReplicaCopies(dataDirectory: directory)
            #expect(try reopened.copy("app").position == tail.position)
            #expect(reopened.names() == ["app"])
            reopened.remove("app")
            #expect(reopened.names().isEmpty)
        }
    }
}
