import Testing

@testable import Directory

@Suite("Directory replica sets")
struct DirectoryReplicaSetTests {
    /// Active members `n1`…`n4` at index 1, raised to format 3 at index 2.
    static func directory(raised: Bool = true) -> DirectoryState {
        var state = DirectoryState()
        let members = (1...4).flatMap { index -> [DirectoryCommand] in
            [
                .joinMember(id: "n\(index)", storageID: "s\(index)", zone: "z\(index)"),
                .activateMember(id: "n\(index)", storageID: "s\(index)"),
            ]
        }
        _ = state.apply(DirectoryBatch(commands: members), at: 1)
        if raised { #expect(state.apply(DirectoryBatch(commands: [.raiseFormat(version: 3)]), at: 2) == [.applied]) }
        return state
    }

    static func create(_ name: String, followers: [String]) -> DirectoryCommand {
        .createNamespace(
            name: name,
            owner: "n1",
            origin: .explicit,
            locked: false,
            ttlMilliseconds: nil,
            createdAt: 7,
            followers: followers
        )
    }

    @Test func replicaSetsNeedFormatThree() {
        var state = Self.directory(raised: false)
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                Self.create("app", followers: ["n2"]),
                .setFollowers(name: "app", epoch: 1, isrVersion: 0, followers: ["n2"]),
            ]),
            at: 2
        )
        #expect(outcomes == [.refused(.formatNotRaised(current: 1)), .refused(.formatNotRaised(current: 1))])
        #expect(state.namespaces["app"] == nil)
        #expect(DirectoryBatch(commands: [Self.create("app", followers: [])]).format == 1)
        #expect(DirectoryBatch(commands: [Self.create("app", followers: ["n2"])]).format == 3)
    }

    @Test func aNewNamespaceStartsWithItsActiveFollowersInSync() {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [.leaveMember(id: "n4", storageID: "s4")]), at: 3)
        let outcomes = state.apply(
            DirectoryBatch(commands: [Self.create("app", followers: ["n3", "n1", "n3", "ghost", "n4", "n2"])]),
            at: 4
        )
        #expect(outcomes == [.applied])
        let entry = state.namespaces["app"]!
        #expect(entry.followers == ["n3", "n2"])
        #expect(entry.inSync == ["n3", "n2"])
        #expect(entry.isr == ["n1", "n3", "n2"])
        #expect(entry.isrVersion == 1)
    }

    @Test func followerChangesAreCompareAndSet() {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [Self.create("app", followers: ["n2", "n3"])]), at: 3)
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                .setFollowers(name: "app", epoch: 1, isrVersion: 0, followers: ["n2"]),
                .setFollowers(name: "app", epoch: 2, isrVersion: 1, followers: ["n2"]),
                .setFollowers(name: "app", epoch: 1, isrVersion: 1, followers: ["n1", "n2"]),
                .setFollowers(name: "app", epoch: 1, isrVersion: 1, followers: ["n2", "n2"]),
                .setFollowers(name: "app", epoch: 1, isrVersion: 1, followers: ["n2", "ghost"]),
                .setFollowers(name: "nothing", epoch: 1, isrVersion: 1, followers: []),
                // n3 leaves the set, n4 joins it out of sync, n2 stays in sync.
                .setFollowers(name: "app", epoch: 1, isrVersion: 1, followers: ["n2", "n4"]),
            ]),
            at: 4
        )
        #expect(
            outcomes == [
                .refused(.isrVersionMismatch(current: 1)), .refused(.epochMismatch(current: 1)),
                .refused(.invalidTransition), .refused(.invalidTransition), .refused(.noSuchMember),
                .refused(.noSuchNamespace), .applied,
            ]
        )
        let entry = state.namespaces["app"]!
        #expect(entry.followers == ["n2", "n4"] && entry.inSync == ["n2"] && entry.isrVersion == 2)
    }

    @Test func theInSyncSetIsAFollowerSubset() {
        var state = Self.directory()
        _ = state.apply(
            DirectoryBatch(commands: [
                Self.create("app", followers: ["n2"]),
                .setFollowers(name: "app", epoch: 1, isrVersion: 1, followers: ["n2", "n3"]),
            ]),
            at: 3
        )
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                .setInSync(name: "app", epoch: 1, isrVersion: 2, inSync: ["n4"]),
                .setInSync(name: "app", epoch: 1, isrVersion: 2, inSync: ["n2", "n2"]),
                .setInSync(name: "app", epoch: 1, isrVersion: 1, inSync: ["n2", "n3"]),
                .setInSync(name: "app", epoch: 1, isrVersion: 2, inSync: ["n2", "n3"]),
                .setInSync(name: "app", epoch: 1, isrVersion: 3, inSync: ["n3"]),
            ]),
            at: 4
        )
        #expect(
            outcomes == [
                .refused(.invalidTransition), .refused(.invalidTransition), .refused(.isrVersionMismatch(current: 2)),
                .applied, .applied,
            ]
        )
        #expect(state.namespaces["app"]!.inSync == ["n3"])
        #expect(state.namespaces["app"]!.isrVersion == 4)
    }

    @Test func aMoveLeavesEveryFollowerOutOfSync() {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [Self.create("app", followers: ["n2", "n3"])]), at: 3)
        #expect(
            state.apply(DirectoryBatch(commands: [.moveNamespace(name: "app", epoch: 1, owner: "n2")]), at: 4) == [
                .applied
            ]
        )
        var entry = state.namespaces["app"]!
        #expect(entry.owner == "n2" && entry.epoch == 2)
        #expect(entry.followers == ["n3"] && entry.inSync.isEmpty && entry.isrVersion == 2)
        // A reclaim (a move back to the owner it has) continues its lineage: the set stays.
        _ = state.apply(
            DirectoryBatch(commands: [.setInSync(name: "app", epoch: 2, isrVersion: 2, inSync: ["n3"])]),
            at: 5
        )
        _ = state.apply(
            DirectoryBatch(commands: [.guarded(createdAt: 7, .moveNamespace(name: "app", epoch: 2, owner: "n2"))]),
            at: 6
        )
        entry = state.namespaces["app"]!
        #expect(entry.epoch == 3 && entry.inSync == ["n3"] && entry.isrVersion == 3)
    }

    @Test func snapshotsCarryReplicaSetsFromFormatThree() throws {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [Self.create("app", followers: ["n2", "n3"])]), at: 3)
        let restored = try DirectoryCodec.decodeState(DirectoryCodec.encode(state))
        #expect(restored == state)
        #expect(restored.namespaces["app"]!.inSync == ["n2", "n3"])
        var old = Self.directory(raised: false)
        _ = old.apply(DirectoryBatch(commands: [Self.create("app", followers: [])]), at: 2)
        let oldBytes = DirectoryCodec.encode(old)
        #expect(try DirectoryCodec.decodeState(oldBytes) == old)
        let batch = DirectoryBatch(commands: [
            Self.create("b", followers: ["n2"]), .setFollowers(name: "b", epoch: 1, isrVersion: 1, followers: []),
            .setInSync(name: "b", epoch: 1, isrVersion: 2, inSync: []),
        ])
        #expect(try DirectoryCodec.decode(DirectoryCodec.encode(batch)) == batch)
        let refusals: [DirectoryOutcome] = [.refused(.isrVersionMismatch(current: 9)), .applied]
        #expect(try DirectoryCodec.decodeOutcomes(DirectoryCodec.encode(refusals)) == refusals)
    }
}
