import Consensus
import Directory
import Testing

@testable import Autopilot

@Suite("Roster")
struct RosterTests {
    /// Storage ids map to replicas by their number ("s7" is replica 7), as the shell's hash would.
    static func replica(_ storage: String) -> ReplicaID { ReplicaID(UInt64(storage.dropFirst())!) }

    static func node(_ id: String, _ storage: String, alive: Bool = true) -> Roster.Node {
        Roster.Node(id: id, storageID: storage, zone: "z", isAlive: alive)
    }

    static func plan(
        _ nodes: [Roster.Node],
        _ members: [MemberEntry],
        voters: [UInt64],
        learners: [UInt64] = []
    ) -> Roster.Plan {
        Roster.plan(
            nodes: nodes,
            members: Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) }),
            configuration: ClusterConfiguration(
                voters: voters.map(ReplicaID.init),
                learners: learners.map(ReplicaID.init)
            ),
            leader: ReplicaID(1),
            replica: Self.replica
        )
    }

    @Test func foundersAreRegisteredAndNewcomersAddedAsLearners() {
        let plan = Self.plan(
            [Self.node("a", "s1"), Self.node("b", "s2"), Self.node("c", "s3")],
            [MemberEntry(id: "a", storageID: "s1", zone: "z", state: .active)],
            voters: [1, 2]
        )
        #expect(
            plan.commands == [
                .joinMember(id: "b", storageID: "s2", zone: "z"), .activateMember(id: "b", storageID: "s2"),
                .joinMember(id: "c", storageID: "s3", zone: "z"), .activateMember(id: "c", storageID: "s3"),
            ]
        )
        // c is not registered yet: it is added once the directory knows it.
        #expect(plan.change == nil)
        let next = Self.plan(
            [Self.node("a", "s1"), Self.node("b", "s2"), Self.node("c", "s3")],
            ["a", "b", "c"].enumerated().map {
                MemberEntry(id: $1, storageID: "s\($0 + 1)", zone: "z", state: .active)
            },
            voters: [1, 2]
        )
        #expect(next == Roster.Plan(change: .addLearner(ReplicaID(3))))
    }

    @Test func aSettledClusterNeedsNothing() {
        let members = ["a", "b"].enumerated().map {
            MemberEntry(id: $1, storageID: "s\($0 + 1)", zone: "z", state: .active)
        }
        #expect(
            Self.plan([Self.node("a", "s1"), Self.node("b", "s2", alive: false)], members, voters: [1], learners: [2])
                .isEmpty
        )
    }

    /// b comes back with a wiped disk (storage s9): its old record is removed, its old replica leaves
    /// the configuration, and only then is it registered and added as a new learner.
    @Test func aWipedNodeIsRetiredBeforeItsNewSelfIsRegistered() {
        let nodes = [Self.node("a", "s1"), Self.node("b", "s9"), Self.node("c", "s3")]
        var members = [
            MemberEntry(id: "a", storageID: "s1", zone: "z", state: .active),
            MemberEntry(id: "b", storageID: "s2", zone: "z", state: .active),
            MemberEntry(id: "c", storageID: "s3", zone: "z", state: .active),
        ]
        #expect(Self.plan(nodes, members, voters: [1, 2, 3]) == Roster.Plan(commands: [.removeMember(id: "b")]))
        members[1].state = .removed
        #expect(Self.plan(nodes, members, voters: [1, 2, 3]) == Roster.Plan(change: .remove(ReplicaID(2))))
        #expect(
            Self.plan(nodes, members, voters: [1, 3])
                == Roster.Plan(
                    commands: [
                        .joinMember(id: "b", storageID: "s9", zone: "z"), .activateMember(id: "b", storageID: "s9"),
                    ]
                )
        )
        members[1] = MemberEntry(id: "b", storageID: "s9", zone: "z", state: .active)
        #expect(Self.plan(nodes, members, voters: [1, 3]) == Roster.Plan(change: .addLearner(ReplicaID(9))))
    }

    @Test func aRemovedStorageIsNeverAddedBack() {
        let members = [
            MemberEntry(id: "a", storageID: "s1", zone: "z", state: .active),
            MemberEntry(id: "b", storageID: "s2", zone: "z", state: .removed),
        ]
        #expect(Self.plan([Self.node("a", "s1"), Self.node("b", "s2")], members, voters: [1]).isEmpty)
        #expect(
            Self.plan([Self.node("a", "s1"), Self.node("b", "s2")], members, voters: [1], learners: [2])
                == Roster.Plan(change: .remove(ReplicaID(2)))
        )
    }

    /// b was wiped (s2 → s9) and its old disk comes back (s2): the old identity is never trusted
    /// again and the new one is left alone.
    @Test func anOldDiskThatComesBackIsIgnored() {
        let members = [
            MemberEntry(id: "a", storageID: "s1", zone: "z", state: .active),
            MemberEntry(id: "b", storageID: "s9", zone: "z", state: .active),
            MemberEntry(id: DirectoryState.retiredKey("b", "s2"), storageID: "s2", zone: "z", state: .removed),
        ]
        #expect(Self.plan([Self.node("a", "s1"), Self.node("b", "s2")], members, voters: [1, 9]).isEmpty)
    }

    @Test func theLeaderIsNeverRemoved() {
        let members = [
            MemberEntry(id: "a", storageID: "s1", zone: "z", state: .removed),
            MemberEntry(id: "b", storageID: "s2", zone: "z", state: .removed),
        ]
        #expect(Self.plan([], members, voters: [1, 2, 3]) == Roster.Plan(change: .remove(ReplicaID(2))))
        #expect(Self.plan([], [members[0]], voters: [1, 3]).isEmpty)
    }
}
