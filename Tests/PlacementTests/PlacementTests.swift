import Placement
import Testing

/// A tiny seeded generator so the property tests are reproducible (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        return PlacementHash.mix(self.state &- 0x9e37_79b9_7f4a_7c15)
    }
}

func members(_ count: Int, zones: Int = 0) -> [PlacementMember] {
    (0..<count).map { PlacementMember(id: "node-\($0)", zone: zones > 0 ? "zone-\($0 % zones)" : "") }
}

func keys(_ count: Int, seed: UInt64 = 1) -> [String] {
    var generator = SeededGenerator(state: seed)
    return (0..<count).map { _ in "ns-\(generator.next() % 1_000_000_000)" }
}

@Suite("Placement hash")
struct PlacementHashTests {
    /// Pins the hash: any change here would move namespaces between nodes of mixed versions.
    @Test func testVectors() {
        #expect(PlacementHash.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(PlacementHash.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(PlacementHash.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
        #expect(PlacementHash.mix(0) == 0xe220_a839_7b1d_cdaf)
        #expect(PlacementHash.keyHash("api-keys") == PlacementHash.mix(PlacementHash.fnv1a64("api-keys")))
        let placement = RendezvousPlacement(members: members(5))
        #expect(placement.owner(of: "api-keys")?.id == Self.expectedOwner)
    }

    /// Computed once from the documented algorithm and pinned.
    static let expectedOwner = "node-3"
}

@Suite("Rendezvous placement")
struct RendezvousPlacementTests {
    @Test func emptyAndSingleMemberSets() {
        let empty = RendezvousPlacement(members: [])
        #expect(empty.owner(of: "x") == nil)
        #expect(empty.replicas(of: "x", copies: 3).isEmpty)
        let one = RendezvousPlacement(members: [PlacementMember(id: "solo")])
        #expect(one.owner(of: "x")?.id == "solo")
        #expect(one.replicas(of: "x", copies: 3).isEmpty)
        #expect(one.placement(of: "x", copies: 3).map(\.id) == ["solo"])
    }

    @Test(arguments: [1 as UInt64, 2, 3])
    func deterministicAcrossMemberOrder(seed: UInt64) {
        var generator = SeededGenerator(state: seed)
        let set = members(20)
        let a = RendezvousPlacement(members: set)
        let b = RendezvousPlacement(members: set.shuffled(using: &generator))
        for key in keys(2000, seed: seed) {
            #expect(a.ranking(of: key) == b.ranking(of: key))
            #expect(a.owner(of: key) == a.ranking(of: key).first)
        }
    }

    @Test(arguments: [10, 100])
    func balance(memberCount: Int) {
        let placement = RendezvousPlacement(members: members(memberCount))
        var counts: [String: Int] = [:]
        let all = keys(100_000)
        for key in all { counts[placement.owner(of: key)!.id, default: 0] += 1 }
        let mean = Double(all.count) / Double(memberCount)
        let maxShare = Double(counts.values.max()!) / mean
        let minShare = Double(counts.values.min()!) / mean
        // Binomial noise alone: 100k keys over 100 members is ~1,000 per member (sd 3.2 %), so the
        // largest of 100 shares sits about 2.5 sd above the mean.
        let tolerance = memberCount == 10 ? 0.03 : 0.10
        print("balance over \(memberCount) members, 100k keys: max/mean \(maxShare), min/mean \(minShare)")
        #expect(maxShare < 1 + tolerance, "max/mean \(maxShare)")
        #expect(minShare > 1 - tolerance, "min/mean \(minShare)")
    }

    @Test func weightsAreRespected() {
        let set = [
            PlacementMember(id: "small", weight: 1), PlacementMember(id: "medium", weight: 2),
            PlacementMember(id: "large", weight: 4),
        ]
        let placement = RendezvousPlacement(members: set)
        var counts: [String: Int] = [:]
        let all = keys(70_000)
        for key in all { counts[placement.owner(of: key)!.id, default: 0] += 1 }
        for member in set {
            let expected = Double(all.count) * member.weight / 7
            #expect(abs(Double(counts[member.id]!) - expected) / expected < 0.03, "\(member.id): \(counts[member.id]!)")
        }
    }

    @Test func removingAMemberMovesOnlyItsKeysToTheirRankTwoMember() {
        let set = members(10)
        let before = RendezvousPlacement(members: set)
        let after = RendezvousPlacement(members: set.filter { $0.id != "node-4" })
        for key in keys(20_000) {
            let ranking = before.ranking(of: key)
            let newOwner = after.owner(of: key)!
            if ranking[0].id == "node-4" {
                #expect(newOwner == ranking[1])
            } else {
                #expect(newOwner == ranking[0])
            }
        }
    }

    @Test func addingAMemberMovesAboutOneNthOfTheKeysAllToIt() {
        let set = members(10)
        let before = RendezvousPlacement(members: set)
        let after = RendezvousPlacement(members: set + [PlacementMember(id: "node-new")])
        let all = keys(50_000)
        var moved = 0
        for key in all where before.owner(of: key) != after.owner(of: key) {
            moved += 1
            #expect(after.owner(of: key)?.id == "node-new")
        }
        let fraction = Double(moved) / Double(all.count)
        #expect(abs(fraction - 1.0 / 11) < 0.01, "moved \(fraction)")
    }

    @Test func replicasPreferOtherZones() {
        let placement = RendezvousPlacement(members: members(9, zones: 3))
        for key in keys(5000) {
            let chosen = placement.placement(of: key, copies: 3)
            #expect(chosen.count == 3)
            #expect(Set(chosen.map(\.zone)).count == 3)
            #expect(chosen[0] == placement.owner(of: key))
            // With more copies than zones, every zone is used and the rest follow rank order.
            let five = placement.placement(of: key, copies: 5)
            #expect(Set(five.map(\.zone)).count == 3)
            #expect(Set(five).count == 5)
        }
    }

    @Test func replicasWithoutZonesAreRanksTwoToR() {
        let placement = RendezvousPlacement(members: members(6))
        for key in keys(1000) {
            #expect(placement.replicas(of: key, copies: 3) == Array(placement.ranking(of: key)[1...2]))
        }
        #expect(placement.replicas(of: "k", copies: 10).count == 5)
    }

    @Test func followersSurroundAnyOwnerAndSkipIneligibleMembers() {
        let placement = RendezvousPlacement(members: members(9, zones: 3))
        for key in keys(2000) {
            let ranked = placement.ranking(of: key)
            #expect(
                placement.followers(of: key, owner: ranked[0].id, copies: 3) == placement.replicas(of: key, copies: 3)
            )
            // An owner that is not first: its followers avoid its zone first, never include it.
            let owner = ranked[4]
            let followers = placement.followers(of: key, owner: owner.id, copies: 3)
            #expect(followers.count == 2 && !followers.contains(owner))
            #expect(Set(followers.map(\.zone) + [owner.zone]).count == 3)
            let dead = followers[0].id
            let replaced = placement.followers(of: key, owner: owner.id, copies: 3) { $0.id != dead }
            #expect(replaced.count == 2 && !replaced.map(\.id).contains(dead) && replaced.contains(followers[1]))
        }
        #expect(placement.followers(of: "k", owner: "node-0", copies: 1).isEmpty)
        #expect(placement.followers(of: "k", owner: "node-0", copies: 20).count == 8)
    }

    @Test func diffListsOnlyChangedKeys() {
        let set = members(8)
        let before = RendezvousPlacement(members: set)
        let after = RendezvousPlacement(members: set.filter { $0.id != "node-2" })
        let all = keys(5000)
        let changes = RendezvousPlacement.diff(old: before, new: after, keys: all, copies: 2)
        for change in changes {
            #expect(change.oldPlacement.contains { $0.id == "node-2" })
        }
        let expected = all.filter { before.placement(of: $0, copies: 2).contains { $0.id == "node-2" } }
        #expect(changes.map(\.key) == expected)
        #expect(RendezvousPlacement.diff(old: before, new: before, keys: all, copies: 3).isEmpty)
    }
}
