import Testing

@testable import Consensus

/// Deterministic checks of paths the project's simulation never reaches (it never runs with fewer
/// than three voters, never proposes `addVoter`, and always enables preVote and checkQuorum).
struct MiniNet {
    var nodes: [RaftNode]
    var drop: (RaftMessage) -> Bool = { _ in false }
    var readStates: [[ReadState]]

    init(count: Int, voters: Int, preVote: Bool = true, checkQuorum: Bool = true, maxBytes: Int = 1 << 20) {
        let configuration = ClusterConfiguration(voters: (1...voters).map { ReplicaID(UInt64($0)) })
        self.nodes = (1...count).map { raw in
            var s = RaftConfiguration(id: ReplicaID(UInt64(raw)), randomSeed: 7)
            s.preVote = preVote
            s.checkQuorum = checkQuorum
            s.maxBytesPerMessage = maxBytes
            return try! RaftNode(settings: s, restoring: raw <= voters ? .bootstrap(configuration) : .joining)
        }
        self.readStates = Array(repeating: [], count: count)
    }

    subscript(_ raw: Int) -> RaftNode {
        get { self.nodes[raw - 1] }
        set { self.nodes[raw - 1] = newValue }
    }

    mutating func flush() {
        for _ in 0..<1000 {
            var messages: [RaftMessage] = []
            for i in self.nodes.indices where self.nodes[i].hasReady {
                let ready = self.nodes[i].ready()
                messages += ready.messages
                self.readStates[i] += ready.readStates
                self.nodes[i].advance(ready)
            }
            if messages.isEmpty && !self.nodes.contains(where: \.hasReady) { return }
            for m in messages where !self.drop(m) { self.nodes[Int(m.to.rawValue) - 1].step(m) }
        }
    }
}

@Suite("Edge cases outside the simulation's reach")
struct EdgeCaseTests {
    static let n1 = ReplicaID(1)
    static let n2 = ReplicaID(2)

    /// A single-voter leader answers reads at once; once it appends `addVoter(n2)` (in force on
    /// append), a read must wait for n2's heartbeat acknowledgement.
    @Test func singleVoterFastReadStopsOnceASecondVoterIsAppended() throws {
        var net = MiniNet(count: 2, voters: 1)
        net[1].campaign(.preElection)
        net.flush()
        #expect(net[1].role == .leader)
        try net[1].readIndex(context: 1)
        net.flush()
        #expect(net.readStates[0].map(\.context) == [1])
        _ = try net[1].proposeChange(.addVoter(Self.n2))
        net.drop = { $0.from == Self.n2 }  // n2 never answers
        try net[1].readIndex(context: 2)
        net.flush()
        #expect(net.readStates[0].map(\.context) == [1])
        net.drop = { _ in false }
        net[1].tick()
        net.flush()
        #expect(net.readStates[0].map(\.context) == [1, 2])
    }

    /// {n1, n2}: the leader removing itself commits the removal only with n2's acknowledgement,
    /// then steps down and never campaigns again; n2 alone then forms the quorum.
    @Test func aTwoVoterLeaderRemovingItselfNeedsTheOtherVoter() throws {
        var net = MiniNet(count: 2, voters: 2)
        net[1].campaign(.preElection)
        net.flush()
        #expect(net[1].role == .leader)
        net.drop = { $0.from == Self.n2 }
        let position = try net[1].proposeChange(.remove(Self.n1))
        net.flush()
        #expect(net[1].commitIndex < position.index)
        #expect(net[1].role == .leader)
        net.drop = { _ in false }
        net[1].tick()
        net.flush()
        #expect(net[1].commitIndex >= position.index)
        #expect(net[1].role == .follower)
        for _ in 0..<40 {
            net[1].tick()
            net[2].tick()
            net.flush()
        }
        #expect(net[2].role == .leader)
        #expect(net[1].role == .follower)
    }

    /// Without preVote and checkQuorum a deposed leader's appends get no reply carrying the new term
    /// (as in etcd); it must still never commit in its old term.
    @Test func aDeposedLeaderWithoutPreVoteOrCheckQuorumCommitsNothing() throws {
        var net = MiniNet(count: 3, voters: 3, preVote: false, checkQuorum: false)
        net[1].campaign(.election)
        net.flush()
        #expect(net[1].role == .leader)
        let committed = net[1].commitIndex
        net.drop = { $0.from == Self.n1 || $0.to == Self.n1 }
        net[2].campaign(.election)
        net.flush()
        #expect(net[2].role == .leader)
        _ = try net[1].propose([9])
        net.drop = { _ in false }
        net.flush()
        #expect(net[1].role == .leader && net[1].term == 2)  // stale, and told nothing
        #expect(net[1].commitIndex == committed)
        net[2].tick()
        net.flush()
        #expect(net[1].role == .follower && net[1].term == net[2].term)
    }

    /// A replica that joined with an empty log learns the founding configuration from the log
    /// itself (bootstrap writes it as entries 1...3), so a snapshot it takes before the first
    /// change it witnessed carries the configuration in force there. (When the founding
    /// configuration was only in the founders' snapshot base, the joiner's snapshot carried
    /// `voters()`, and a founding voter installing it never campaigned again.)
    @Test func aJoinersSnapshotCarriesTheConfigurationInForce() throws {
        let n3 = ReplicaID(3)
        let n4 = ReplicaID(4)
        var net = MiniNet(count: 4, voters: 3, maxBytes: 1)
        #expect(net[1].commitIndex == 3)  // the bootstrap entries, committed from the start
        net.drop = { $0.to == n3 || $0.from == n3 }
        net[1].campaign(.preElection)
        net.flush()
        #expect(net[1].role == .leader)
        _ = try net[1].propose([1])
        _ = try net[1].propose([2])
        net.flush()
        #expect(net[1].commitIndex == 6)
        // n4 joins; it receives entries one per append, the configuration entry (7) held back.
        net.drop = { m in
            if m.to == n3 || m.from == n3 { return true }
            if m.to == n4, case .append(_, _, let entries, _) = m.kind { return entries.contains { $0.index >= 7 } }
            return false
        }
        let change = try net[1].proposeChange(.addLearner(n4))
        #expect(change.index == 7)
        for _ in 0..<6 {
            net[1].tick()
            net.flush()
        }
        #expect(net[4].lastIndex == 6)
        #expect(net[4].commitIndex == 6)
        #expect(net[4].appliedIndex == 6)
        let snapshot = try net[4].compact(through: 6, data: [])
        let founding = ClusterConfiguration(voters: [1, 2, 3].map { ReplicaID($0) })
        #expect(net[1].log.configuration(at: 6) == founding)
        #expect(snapshot.metadata.configuration == founding)
        // n3 (a founding voter, cut off so far) installs that snapshot, as when n4 leads later.
        net[3].step(RaftMessage(from: n4, to: n3, term: net[1].term + 1, kind: .snapshot(snapshot)))
        #expect(net[3].latestSnapshot == snapshot)
        #expect(net[3].configuration == founding)
        #expect(net[3].isPromotable)
    }

    /// Like etcd, a member ignores a snapshot whose configuration leaves it out (here, one from
    /// before the fix: the configuration empty) and keeps its log, configuration and vote.
    @Test func aMemberIgnoresASnapshotThatLeavesItOut() {
        var net = MiniNet(count: 3, voters: 3)
        let bogus = Snapshot(metadata: SnapshotMetadata(index: 9, term: 2, configuration: .empty))
        net[3].step(RaftMessage(from: ReplicaID(1), to: ReplicaID(3), term: 2, kind: .snapshot(bogus)))
        #expect(net[3].latestSnapshot != bogus)
        #expect(net[3].lastIndex == 3)
        #expect(net[3].isPromotable)
        let ready = net[3].ready()
        #expect(ready.snapshot == nil)
        #expect(ready.messages.map(\.kind) == [.appendAccepted(index: 3)])
    }

    /// A single voter that compacted its log and then adds a second voter needs the newcomer to
    /// commit the change, and can only send it a snapshot from before the change: the newcomer,
    /// no member in its own view, must take it (etcd's rule, "ignore any snapshot that leaves the
    /// receiver out", would deadlock here), then receives the change itself.
    @Test func aNewVoterTakesASnapshotFromBeforeItsAddition() throws {
        let n2 = ReplicaID(2)
        var net = MiniNet(count: 2, voters: 1)
        net[1].campaign(.preElection)
        net.flush()
        #expect(net[1].role == .leader)
        _ = try net[1].propose([1])
        net.flush()
        let snapshot = try net[1].compact(through: net[1].appliedIndex, data: [])
        #expect(!snapshot.metadata.configuration.contains(n2))
        let change = try net[1].proposeChange(.addVoter(n2))
        net.flush()
        #expect(net[2].latestSnapshot == snapshot)
        #expect(net[1].commitIndex == change.index)
        #expect(net[2].commitIndex == change.index)
        #expect(net[2].isPromotable)
    }
}
