import Foundation
import Testing

@testable import SyncServer

@Suite("Change history")
struct ChangeHistoryTests {
    /// A history of `generations` generations of `commits` commits each, commit `s` writing pages
    /// derived from `s` (deterministic).
    static func history(generations: Int, commits: Int, maxGroups: Int = 256) -> ChangeHistory {
        var history = ChangeHistory(lineage: 0xfeed_beef_0000_0001, floorSequence: 0)
        for g in 0..<generations {
            let start = history.endSequence
            let pages = (0..<commits).map { i -> [UInt32] in
                let s = start + UInt64(i) + 1
                return Array(Set([1, UInt32(s % 17) + 2, UInt32(s % 5) + 30])).sorted()
            }
            history.generations.append(
                ChangeHistory.generation(
                    salt1: UInt32(g),
                    salt2: 7,
                    startSequence: start,
                    pagesByCommit: pages,
                    checksums: (0..<commits).map { Self.checksum(start + UInt64($0) + 1) },
                    retiredAtMilliseconds: UInt64(g) * 1000,
                    maxGroups: maxGroups
                )
            )
        }
        return history
    }

    /// A made-up cumulative checksum of commit `sequence`.
    static func checksum(_ sequence: UInt64) -> UInt64 { sequence &* 0x9e37_79b9_7f4a_7c15 }

    /// The exact pages commits after `sequence` wrote, from the same formula.
    static func exactPages(after sequence: UInt64, upTo end: UInt64) -> Set<UInt32> {
        guard end > sequence else { return [] }
        return Set(((sequence + 1)...end).flatMap { s in [1, UInt32(s % 17) + 2, UInt32(s % 5) + 30] })
    }

    @Test func answersAreSupersetsOfTheExactChanges() {
        let history = Self.history(generations: 4, commits: 100, maxGroups: 7)
        #expect(history.endSequence == 400)
        #expect(history.generations.allSatisfy { $0.groups.count <= 7 })
        for sequence in stride(from: UInt64(0), through: 400, by: 13) {
            let answer = history.pagesChanged(after: sequence)!
            #expect(answer.isSuperset(of: Self.exactPages(after: sequence, upTo: 400)))
        }
        #expect(history.pagesChanged(after: 400) == [])
    }

    @Test func codecRoundTripsAndStopsAtATornOrCorruptRecord() throws {
        let history = Self.history(generations: 3, commits: 50)
        let bytes = ChangeHistoryCodec.file(history).bytes
        let decoded = try ChangeHistoryCodec.decode(bytes)
        #expect(decoded.history == history)
        #expect(decoded.validLength == bytes.count)
        #expect(decoded.recordOffsets.count == 3)
        // Torn: the last record cut short.
        let torn = try ChangeHistoryCodec.decode(Array(bytes.dropLast(3)))
        #expect(torn.history.generations == Array(history.generations.prefix(2)))
        #expect(torn.validLength == decoded.recordOffsets[2])
        // Corrupt: a flipped byte inside the second record ends the history before it.
        var corrupt = bytes
        corrupt[decoded.recordOffsets[1] + 12] ^= 0x40
        #expect(try ChangeHistoryCodec.decode(corrupt).history.generations.count == 1)
        // Not a history file at all.
        #expect(throws: ChangeHistoryCodec.DecodeError.self) {
            try ChangeHistoryCodec.decode(Array(repeating: 0, count: 64))
        }
    }

    @Test func ageRetentionRaisesTheFloorAndKeepsTheEnd() {
        var history = Self.history(generations: 5, commits: 10)
        var retention = ChangeHistory.Retention()
        retention.maxAgeMilliseconds = 2500
        // Generations retired at 0, 1000, ..., 4000 ms; at 5000 ms those before 2500 ms expire.
        let pruned1 = history.prune(retention, nowMilliseconds: 5000, databaseBytes: 0)
        #expect(pruned1)
        #expect(history.floorSequence == 30)
        #expect(history.endSequence == 50)
        #expect(history.pagesChanged(after: 29) == nil)
        #expect(history.pagesChanged(after: 30)!.isSuperset(of: Self.exactPages(after: 30, upTo: 50)))
        // Everything expired: the end sequence stays (the next generation continues from it).
        let pruned2 = history.prune(retention, nowMilliseconds: 1_000_000, databaseBytes: 0)
        #expect(pruned2)
        #expect(history.endSequence == 50)
        #expect(history.floorSequence == 50)
        #expect(history.pagesChanged(after: 49) == nil)
        #expect(history.pagesChanged(after: 50) == [])
        let pruned3 = history.prune(retention, nowMilliseconds: 1_000_000, databaseBytes: 0)
        #expect(!pruned3)
    }

    @Test func sizeRetentionMergesButNeverLosesAChange() {
        let original = Self.history(generations: 6, commits: 300)
        var history = original
        var retention = ChangeHistory.Retention()
        retention.minimumBytes = 600
        retention.databaseFraction = 0
        let pruned4 = history.prune(retention, nowMilliseconds: 6000, databaseBytes: 0)
        #expect(pruned4)
        #expect(ChangeHistoryCodec.encodedSize(history) <= 600)
        #expect(history.floorSequence == 0)
        #expect(history.endSequence == original.endSequence)
        for sequence in stride(from: UInt64(0), through: original.endSequence, by: 37) {
            #expect(history.pagesChanged(after: sequence)!.isSuperset(of: original.pagesChanged(after: sequence)!))
        }
    }

    @Test func revisionsRoundTripAndRejectGarbage() {
        let revision = SyncRevision(lineage: 0x00ab_cdef_0123_4567, epoch: 3, sequence: 12345, checksum: 0xdead_beef)
        #expect(revision.description == "00abcdef01234567:3:12345:00000000deadbeef")
        #expect(SyncRevision(revision.description) == revision)
        let bare = SyncRevision(lineage: 1, epoch: 0, sequence: 0, checksum: nil)
        #expect(SyncRevision(bare.description) == bare)
        for garbage in [
            "", "12", "0000000000000001:0", "000000000000001:0:1", "0000000000000001:x:1", "0000000000000001:0:-1",
            "0000000000000001:0:1:", "0000000000000001:0:1:00000000DEADBEEF", "0000000000000001:0:1:2:3",
            "00000000ffffffff-0000000000000000:5",
        ] {
            #expect(SyncRevision(garbage) == nil, "\(garbage)")
        }
    }

    @Test func historyFileSurvivesReopenAndTornAppends() throws {
        let directory = NSTemporaryDirectory() + "history-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/db-history"
        let file = try ChangeHistoryFile(path: path)
        let lineage = file.history.lineage
        let generations = Self.history(generations: 3, commits: 20).generations
        for generation in generations { try file.append(generation) }
        #expect(try ChangeHistoryFile(path: path).history.generations == generations)
        #expect(try ChangeHistoryFile(path: path).history.lineage == lineage)
        // A torn append (a crash mid-write) is cut off on open; the file is usable again.
        let handle = FileHandle(forWritingAtPath: path)!
        handle.seekToEndOfFile()
        handle.write(Data([0, 0, 1, 0, 9, 9, 9]))
        try handle.close()
        let reopened = try ChangeHistoryFile(path: path)
        #expect(reopened.history.generations == generations)
        try reopened.removeLast()
        #expect(try ChangeHistoryFile(path: path).history.generations == Array(generations.prefix(2)))
    }

    @Test func retiredRevisionsAreVerifiedNotTrusted() {
        var history = Self.history(generations: 3, commits: 40)
        for sequence in [UInt64(1), 17, 40, 41, 79, 80, 120] {
            #expect(history.verifies(sequence: sequence, checksum: Self.checksum(sequence)), "\(sequence)")
            #expect(!history.verifies(sequence: sequence, checksum: Self.checksum(sequence) ^ 1), "\(sequence)")
            #expect(!history.verifies(sequence: sequence, checksum: nil))
        }
        #expect(!history.verifies(sequence: 0, checksum: 0))
        #expect(!history.verifies(sequence: 121, checksum: Self.checksum(121)))
        // Under size pressure the oldest per-commit checksums go first: those clients resync, and a
        // generation's end stays verifiable.
        var retention = ChangeHistory.Retention()
        retention.minimumBytes = ChangeHistoryCodec.encodedSize(history) - 1
        retention.databaseFraction = 0
        let pruned = history.prune(retention, nowMilliseconds: 3000, databaseBytes: 0)
        #expect(pruned)
        #expect(!history.verifies(sequence: 17, checksum: Self.checksum(17)))
        #expect(history.verifies(sequence: 40, checksum: Self.checksum(40)))
        #expect(history.verifies(sequence: 79, checksum: Self.checksum(79)))
    }
}
