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

    /// The directory's format is raised to what every counted member (and every live newcomer)
    /// announces, only when each of them can be vouched for under its recorded storage id.
    @Test func theFormatIsRaisedOnlyWhenEveryMemberAnnouncesIt() {
        func node(_ id: String, _ storage: String, _ format: UInt32, alive: Bool = true) -> Roster.Node {
            Roster.Node(id: id, storageID: storage, zone: "z", isAlive: alive, directoryFormat: format)
        }
        let members = Dictionary(
            uniqueKeysWithValues: [
                MemberEntry(id: "a", storageID: "s1", zone: "z", state: .active),
                MemberEntry(id: "b", storageID: "s2", zone: "z", state: .leaving),
                MemberEntry(id: "gone", storageID: "s5", zone: "z", state: .left),
                MemberEntry(id: "out", storageID: "s6", zone: "z", state: .removed),
            ].map { ($0.id, $0) }
        )
        func raise(_ nodes: [Roster.Node], current: UInt32 = 2) -> UInt32? {
            Roster.formatRaise(nodes: nodes, members: members, current: current, supported: 4)
        }
        // Both counted members announce 4 (b even while down): raised, whatever left or was removed.
        #expect(raise([node("a", "s1", 4), node("b", "s2", 4, alive: false)]) == 4)
        // One still on 3: raised to 3 only; already there: nothing.
        #expect(raise([node("a", "s1", 4), node("b", "s2", 3)]) == 3)
        #expect(raise([node("a", "s1", 4), node("b", "s2", 3)], current: 3) == nil)
        // b not seen, or seen with another storage id (a wiped disk): nobody vouches for it.
        #expect(raise([node("a", "s1", 4)]) == nil)
        #expect(raise([node("a", "s1", 4), node("b", "s9", 4)]) == nil)
        // A live newcomer not registered yet counts too; a dead stranger does not.
        #expect(raise([node("a", "s1", 4), node("b", "s2", 4), node("c", "s3", 2)]) == nil)
        #expect(raise([node("a", "s1", 4), node("b", "s2", 4), node("c", "s3", 2, alive: false)]) == 4)
        // Never beyond this build, never for an empty directory.
        #expect(
            Roster.formatRaise(
                nodes: [node("a", "s1", 9)],
                members: members.filter { $0.key == "a" },
                current: 2,
                supported: 4
            ) == 4
        )
        #expect(Roster.formatRaise(nodes: [node("a", "s1", 4)], members: [:], current: 1) == nil)
    }

    /// A node whose build does not know the log's directory format is neither registered nor added.
    @Test func aNodeBehindTheLogsFormatIsLeftOut() {
        let old = Roster.Node(id: "b", storageID: "s2", zone: "z", isAlive: true, directoryFormat: 2)
        let members = [MemberEntry(id: "a", storageID: "s1", zone: "z", state: .active)]
        let plan = Roster.plan(
            nodes: [Self.node("a", "s1"), old],
            members: Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) }),
            configuration: ClusterConfiguration(voters: [ReplicaID(1)], learners: []),
            leader: ReplicaID(1),
            format: 3,
            replica: Self.replica
        )
        #expect(plan.isEmpty)
        #expect(!Self.plan([Self.node("a", "s1"), old], members, voters: [1]).isEmpty)
    }
}
