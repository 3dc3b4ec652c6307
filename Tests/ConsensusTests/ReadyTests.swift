import Testing

@testable import Consensus

/// The shell contract: what must be durable before a `Ready`'s messages go out, and what is handed
/// out once or until acknowledged.
@Suite("Ready and advance")
struct ReadyTests {
    static let n1 = ReplicaID(1)
    static let n2 = ReplicaID(2)

    /// A founder of {n1, n2, n3} that applied its bootstrap entries (1...3, term 1).
    static func follower() -> RaftNode {
        let configuration = ClusterConfiguration(voters: [1, 2, 3].map { ReplicaID($0) })
        var node = try! RaftNode(settings: RaftConfiguration(id: Self.n2), restoring: .bootstrap(configuration))
        node.advance(node.ready())
        return node
    }

    @Test func aVoteIsInTheSameReadyAsItsHardState() {
        var node = Self.follower()
        _ = node.ready()
        node.step(
            RaftMessage(
                from: Self.n1,
                to: Self.n2,
                term: 2,
                kind: .vote(lastLogIndex: 3, lastLogTerm: 1, transfer: false)
            )
        )
        let ready = node.ready()
        #expect(ready.hardState == HardState(term: 2, vote: Self.n1, commit: 3))
        #expect(ready.messages.map(\.kind) == [.voteResponse(granted: true)])
    }

    @Test func anAcknowledgementIsInTheSameReadyAsTheEntriesItAcknowledges() {
        var node = Self.follower()
        _ = node.ready()
        let entries = [
            LogEntry(term: 2, index: 4, payload: .empty), LogEntry(term: 2, index: 5, payload: .command([7])),
        ]
        node.step(
            RaftMessage(
                from: Self.n1,
                to: Self.n2,
                term: 2,
                kind: .append(prevLogIndex: 3, prevLogTerm: 1, entries: entries, commit: 4)
            )
        )
        let ready = node.ready()
        #expect(ready.entries == entries)
        #expect(ready.messages.map(\.kind) == [.appendAccepted(index: 5)])
        // Committed entries are applied only once persisted: none in the Ready that persists them.
        #expect(ready.committedEntries.isEmpty)
        node.advance(ready)
        let next = node.ready()
        #expect(next.entries.isEmpty)
        #expect(next.committedEntries == [entries[0]])
        #expect(next.messages.isEmpty)
        node.advance(next)
        #expect(!node.hasReady)
        #expect(node.appliedIndex == 4)
    }

    @Test func unacknowledgedEntriesAreHandedOutAgainButMessagesOnce() {
        var node = Self.follower()
        _ = node.ready()
        node.step(
            RaftMessage(
                from: Self.n1,
                to: Self.n2,
                term: 2,
                kind: .append(
                    prevLogIndex: 3,
                    prevLogTerm: 1,
                    entries: [LogEntry(term: 2, index: 4, payload: .empty)],
                    commit: 3
                )
            )
        )
        let first = node.ready()
        let second = node.ready()
        #expect(second.entries == first.entries)
        #expect(second.hardState == first.hardState)
        #expect(!first.messages.isEmpty)
        #expect(second.messages.isEmpty)
    }

    @Test func aSingleVoterLeaderCountsItsOwnEntriesOnlyOnceDurable() throws {
        let configuration = ClusterConfiguration(voters: [Self.n1])
        var node = try RaftNode(settings: RaftConfiguration(id: Self.n1), restoring: .bootstrap(configuration))
        node.campaign(.preElection)
        #expect(node.role == .candidate)  // its own vote counts once durable
        node.advance(node.ready())
        #expect(node.role == .leader)
        #expect(node.commitIndex == 1)  // the bootstrap entry only: the no-op is not durable yet
        let ready = node.ready()
        #expect(ready.entries.count == 1)
        node.advance(ready)
        #expect(node.commitIndex == 2)
    }

    /// Regression (simulation seeds 5008217, 5002914, …): a single voter led on its unpersisted
    /// vote, `propose` returned (19, 4), a crash lost the write of term 4, and after the restart
    /// (in term 3) it led term 4 again and committed another entry at (19, 4). It must neither
    /// lead nor hand out positions before its vote is durable.
    @Test func aSingleVoterLeadsOnlyOnADurableVote() throws {
        let durable = PersistentState.bootstrap(ClusterConfiguration(voters: [Self.n1]))
        var node = try RaftNode(settings: RaftConfiguration(id: Self.n1), restoring: durable)
        node.campaign(.preElection)
        let term = node.term
        #expect(throws: RaftError.self) { try node.propose([1]) }
        _ = node.ready()  // the write of term and vote is lost in a crash
        node = try RaftNode(settings: RaftConfiguration(id: Self.n1), restoring: durable)
        node.campaign(.preElection)
        node.advance(node.ready())
        #expect(node.role == .leader && node.term == term)
        #expect(try node.propose([2]) == LogPosition(index: node.lastIndex, term: term))
    }

    @Test func aDeposedLeaderLearnsTheNewTermFromAnyReplyAndStepsDown() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.isolate(1)
        cluster.tickAll(times: 25)
        let newLeader = [2, 3].first { cluster[$0].role == .leader }
        #expect(newLeader != nil)
        #expect(cluster[1].role == .follower)  // check-quorum already
        cluster.heal()
        // Even if it still believed it leads, an append in the old term is answered with the new term.
        cluster[1].becomeLeaderForTesting(term: 1)
        cluster.tick(1)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].term == cluster[newLeader ?? 2].term)
    }

    @Test func followersRefuseProposals() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        let error = #expect(throws: RaftError.self) { try cluster[2].propose([1]) }
        #expect(error?.code == .notLeader)
        #expect(error?.leader == Self.n1)
    }

    @Test func duelingCandidatesResolveToOneLeader() {
        var cluster = TestCluster(count: 3) { $0.preVote = false }
        cluster.cut = [(1, 3), (3, 1)]
        cluster.campaign(1)
        cluster.campaign(3)
        #expect(cluster[1].role == .leader)
        #expect(cluster[3].role == .candidate)
        cluster.heal()
        cluster.tickAll(times: 40)
        let leaders = (1...3).filter { cluster[$0].role == .leader }
        #expect(leaders.count == 1)
        #expect((1...3).allSatisfy { cluster.log($0) == cluster.log(leaders[0]) })
    }
}

extension RaftNode {
    /// Forces a stale leadership, as a replica paused across an election would believe it holds.
    mutating func becomeLeaderForTesting(term: UInt64) {
        self.term = term
        self.role = .leader
        self.leader = self.id
        self.progress = []
        self.syncProgress()
    }
}
