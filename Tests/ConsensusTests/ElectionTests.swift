import Testing

@testable import Consensus

@Suite("Election")
struct ElectionTests {
    @Test func aCampaignWinsWithAQuorumAndEveryoneFollows() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].term == 2)  // bootstrap starts the founders in term 1
        for raw in 2...3 {
            #expect(cluster[raw].role == .follower)
            #expect(cluster[raw].leader == ReplicaID(1))
            #expect(cluster[raw].term == 2)
        }
        // The new leader's no-op (after the three bootstrap entries) is committed everywhere.
        #expect((1...3).allSatisfy { cluster[$0].commitIndex == 4 })
    }

    @Test func electionTimeoutStartsACampaignWithinTheRandomizedWindow() {
        var cluster = TestCluster(count: 3)
        var ticks = 0
        while cluster[1].role != .leader && ticks < 20 {
            cluster.tick(1)
            ticks += 1
        }
        #expect(cluster[1].role == .leader)
        #expect(ticks >= 10 && ticks < 20)
    }

    @Test func aSingleVoterElectsItselfAndCommitsOnceItsEntriesAreDurable() throws {
        var cluster = TestCluster(count: 1)
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        let proposed = cluster.propose(1, "x")
        let position = try #require(proposed)
        #expect(cluster[1].commitIndex == position.index)
        #expect(cluster.applied[0].last?.payload == .command(Array("x".utf8)))
    }

    @Test func aCampaignWithoutAQuorumFails() {
        var cluster = TestCluster(count: 3)
        cluster.isolate(1)
        cluster.campaign(1)
        #expect(cluster[1].role == .preCandidate)
        #expect(cluster[1].term == 1)  // pre-vote: no term was burned
        cluster.tick(1, times: 30)
        #expect(cluster[1].role != .leader)
        #expect(cluster[1].term == 1)
    }

    @Test func aVoterRefusesACandidateWithAStaleLog() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.cut = [(1, 3), (3, 1)]
        cluster.propose(1, "a")
        cluster.propose(1, "b")
        #expect(cluster[1].commitIndex == 6)
        cluster.heal()
        cluster.isolate(1)
        // n3 lacks the entries n2 holds: n2 refuses, so n3 cannot win even in a later term.
        cluster.tick(3, times: 30)
        #expect(cluster[3].role != .leader)
        cluster.tick(2, times: 30)
        #expect(cluster[2].role == .leader)
    }

    @Test func preVoteKeepsARejoiningPartitionedReplicaFromDisruptingTheLeader() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.isolate(3)
        for _ in 0..<10 {
            cluster.tick(3, times: 25)
            cluster.tick(1, times: 2)
            cluster.tick(2, times: 2)
        }
        #expect(cluster[3].term == 2)
        cluster.heal()
        cluster.tickAll(times: 5)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].term == 2)
        #expect(cluster[3].leader == ReplicaID(1))
    }

    @Test func withoutPreVoteARejoiningReplicaDisruptsTheLeader() {
        var cluster = TestCluster(count: 3) { settings in
            settings.preVote = false
            settings.checkQuorum = false
        }
        cluster.campaign(1)
        cluster.isolate(3)
        cluster.tick(3, times: 25)
        #expect(cluster[3].term > 2)
        cluster.heal()
        cluster.tickAll(times: 25)
        // The leader saw a higher term and stepped down.
        #expect(cluster[1].term > 2)
    }

    @Test func checkQuorumMakesAnIsolatedLeaderStepDown() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.isolate(1)
        cluster.tick(1, times: 10)
        #expect(cluster[1].role == .leader)
        cluster.tick(1, times: 10)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].leader == nil)
    }

    @Test func aFollowerThatHeardFromTheLeaderIgnoresVoteRequests() {
        var cluster = TestCluster(count: 3) { $0.preVote = false }
        cluster.campaign(1)
        // n3 is cut from the leader only: it times out and asks n2, which still hears from n1.
        cluster.cut = [(1, 3), (3, 1)]
        cluster.tick(3, times: 25)
        cluster.tick(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster[2].term == 2)
        #expect(cluster[2].leader == ReplicaID(1))
    }

    @Test func leadershipIsTransferredToACaughtUpVoterDespiteTheLease() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.cut = [(1, 3)]
        cluster.propose(1, "a")
        cluster.heal()
        try cluster[1].transferLeadership(to: ReplicaID(3))
        #expect(throws: RaftError.self) { try cluster[1].propose([1]) }
        cluster.deliverAll()
        #expect(cluster[3].role == .leader)
        #expect(cluster[3].term == 3)
        #expect(cluster[1].leader == ReplicaID(3))
        #expect(cluster[1].transferee == nil)
    }

    @Test func aTransferThatCannotFinishIsAbandonedAfterAnElectionTimeout() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.cut = [(1, 3), (3, 1)]
        try cluster[1].transferLeadership(to: ReplicaID(3))
        cluster.tick(1, times: 9)
        #expect(cluster[1].transferee == ReplicaID(3))
        cluster.cut = [(1, 3), (3, 1)]
        cluster.tick(1)
        #expect(cluster[1].transferee == nil)
        #expect(cluster[1].role == .leader)
        #expect(cluster.propose(1, "b") != nil)
    }

    @Test func invalidTickSettingsAreRejected() {
        var settings = RaftConfiguration(id: ReplicaID(1))
        settings.electionTicks = 2
        settings.heartbeatTicks = 2
        #expect(throws: RaftError.self) { try settings.validate() }
        #expect(throws: RaftError.self) {
            try RaftNode(settings: settings, restoring: .bootstrap(ClusterConfiguration(voters: [ReplicaID(1)])))
        }
    }
}
