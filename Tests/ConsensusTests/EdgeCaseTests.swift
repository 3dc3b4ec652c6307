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
        #expect(net[1].role == .leader && net[1].term == 1)  // stale, and told nothing
        #expect(net[1].commitIndex == committed)
        net[2].tick()
        net.flush()
        #expect(net[1].role == .follower && net[1].term == net[2].term)
    }

    /// FINDING: a replica that joins with `PersistentState.joining` has an empty base configuration,
    /// so when it receives the log from index 1 (the leader never compacted), its
    /// Known issue (liveness, not safety): a replica that joined with an empty log knows no
    /// configuration for the indices before the first configuration entry, so a snapshot it takes
    /// there carries `voters()`. A founding voter that installs it (sent by the joiner once it
    /// leads) believes it is no voter and never campaigns until a later configuration entry
    /// arrives. The fix (etcd's bootstrap writes the initial configuration as log entries) belongs
    /// to wiring the directory in; until then this records the correct expectations as a known issue.
    @Test func aJoinersSnapshotCarriesTheConfigurationInForce() throws {
        let n3 = ReplicaID(3)
        let n4 = ReplicaID(4)
        var net = MiniNet(count: 4, voters: 3, maxBytes: 1)
        net.drop = { $0.to == n3 || $0.from == n3 }
        net[1].campaign(.preElection)
        net.flush()
        #expect(net[1].role == .leader)
        _ = try net[1].propose([1])
        _ = try net[1].propose([2])
        net.flush()
        #expect(net[1].commitIndex == 3)
        // n4 joins; it receives entries one per append, the configuration entry (4) held back.
        net.drop = { m in
            if m.to == n3 || m.from == n3 { return true }
            if m.to == n4, case .append(_, _, let entries, _) = m.kind { return entries.contains { $0.index >= 4 } }
            return false
        }
        let change = try net[1].proposeChange(.addLearner(n4))
        #expect(change.index == 4)
        for _ in 0..<3 {
            net[1].tick()
            net.flush()
        }
        #expect(net[4].lastIndex == 3)
        #expect(net[4].commitIndex == 3)
        #expect(net[4].appliedIndex == 3)
        let snapshot = try net[4].compact(through: 3, data: [])
        // Every other replica says the configuration at index 3 is voters(n1,n2,n3).
        let founding = ClusterConfiguration(voters: [1, 2, 3].map { ReplicaID($0) })
        #expect(net[1].log.configuration(at: 3) == founding)
        // n3 (a founding voter, cut off so far) installs that snapshot, as when n4 leads later.
        net[3].step(RaftMessage(from: n4, to: n3, term: net[1].term + 1, kind: .snapshot(snapshot)))
        withKnownIssue("a joiner's snapshot before the first configuration entry carries an empty configuration") {
            #expect(snapshot.metadata.configuration == founding)
            #expect(net[3].isPromotable)
        }
    }
}
