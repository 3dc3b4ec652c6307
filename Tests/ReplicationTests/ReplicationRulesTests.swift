import Directory
import Testing

@testable import Replication

@Suite("Replication rules")
struct ReplicationRulesTests {
    static let generation = WALGeneration(salt1: 7, salt2: 9)
    static let older = WALGeneration(salt1: 6, salt2: 1)

    static func position(_ generation: WALGeneration?, _ offset: Int, _ checksum: UInt64) -> WALPosition {
        WALPosition(generation: generation, offset: offset, checksum: WALChecksum(packed: checksum))
    }

    @Test func aFollowerAcceptsOnlyItsOwnerAtTheEpochItApplied() {
        let entry = NamespaceEntry(
            name: "app",
            owner: "n1",
            epoch: 4,
            origin: .explicit,
            locked: false,
            createdAt: 1,
            followers: ["n2", "n3"],
            inSync: ["n2"],
            isrVersion: 3
        )
        let sender = FollowerRules.Sender(node: "n1", epoch: 4, createdAt: 1, directoryIndex: 50)
        #expect(FollowerRules.admit(sender, selfID: "n3", appliedIndex: 50, entry: entry) == .accept)
        #expect(FollowerRules.admit(sender, selfID: "n3", appliedIndex: 49, entry: entry) == .waitForDirectory)
        for (sender, selfID, entry) in [
            (FollowerRules.Sender(node: "n1", epoch: 3, createdAt: 1, directoryIndex: 10), "n2", entry),
            (FollowerRules.Sender(node: "n2", epoch: 4, createdAt: 1, directoryIndex: 10), "n3", entry),
            (FollowerRules.Sender(node: "n1", epoch: 4, createdAt: 2, directoryIndex: 10), "n3", entry),
            (sender, "n4", entry),
            (sender, "n2", nil),
        ] {
            guard case .refuse(let error) = FollowerRules.admit(sender, selfID: selfID, appliedIndex: 60, entry: entry)
            else {
                Issue.record("accepted \(sender) at \(selfID)")
                continue
            }
            #expect(error.code == .staleSender)
        }
        var archiving = entry
        archiving.state = .archiving
        #expect(FollowerRules.admit(sender, selfID: "n2", appliedIndex: 60, entry: archiving) != .accept)
        let at = Self.position(Self.generation, 4152, 5)
        #expect(FollowerRules.check(at, continues: at) == nil)
        #expect(FollowerRules.check(at, continues: Self.position(Self.generation, 4152, 6))?.code == .positionMismatch)
    }

    @Test func theOwnerShipsWhatContinuesACopyAndCopiesTheRestWhole() throws {
        let bytes = try WALTailTests.wal(transactions: 6)
        let tail = WALTailTests.tail(of: bytes)
        let current = tail.position.generation!
        let middle = tail.commits.keys.sorted()[3]
        let retiredEnd = Self.position(Self.older, 8272, 77)
        let retired = ShipmentPlan.Retired(end: retiredEnd)
        func plan(
            _ position: WALPosition,
            base: String? = nil,
            ownerRetired: ShipmentPlan.Retired? = retired
        )
            -> ShipmentPlan
        {
            ShipmentPlan.next(
                tail: tail,
                base: "h2",
                retired: ownerRetired,
                copy: .init(position: position, base: base)
            )
        }
        #expect(plan(tail.position) == .upToDate)
        #expect(
            plan(WALPosition(generation: current, offset: middle, checksum: tail.commits[middle]!))
                == .append(from: middle)
        )
        #expect(plan(WALPosition(generation: current, offset: middle, checksum: .zero)) == .install)
        #expect(plan(WALPosition(generation: current, offset: middle + 1, checksum: tail.commits[middle]!)) == .install)
        #expect(plan(WALPosition(generation: current, offset: bytes.count + 4120, checksum: .zero)) == .install)
        #expect(plan(retiredEnd) == .retire)
        #expect(plan(retiredEnd, ownerRetired: nil) == .install)
        #expect(plan(Self.position(Self.older, 4152, 1)) == .install)
        #expect(plan(.empty, base: "h2") == .append(from: 0))
        #expect(plan(.empty, base: "h1") == .install)
        #expect(plan(.empty, base: nil) == .install)
        let empty = WALTail()
        #expect(
            ShipmentPlan.next(tail: empty, base: "h2", retired: nil, copy: .init(position: .empty, base: "h2"))
                == .upToDate
        )
        #expect(
            ShipmentPlan.next(tail: empty, base: "h2", retired: nil, copy: .init(position: .empty, base: "h"))
                == .install
        )
        let text = Self.position(Self.generation, 4152, 0xabc)
        #expect(WALPosition(text.description) == text && WALPosition(WALPosition.empty.description) == .empty)
        #expect(WALPosition("x@1#2") == nil && WALPosition("-@-1#2") == nil)
        #expect(WALGeneration(Self.generation.description) == Self.generation)
        #expect(WALGeneration("zz") == nil)
    }
}
