import Testing

@testable import Consensus

@Suite("ReadIndex")
struct ReadIndexTests {
    @Test func aReadIsAnsweredOnlyAfterAHeartbeatQuorumConfirmsLeadership() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.propose(1, "a")
        cluster.isolate(1)
        try cluster[1].readIndex(context: 7)
        cluster.deliverAll()
        cluster.tick(1, times: 3)
        #expect(cluster.readStates[0].isEmpty)
        cluster.heal()
        cluster.tick(1)
        #expect(cluster.readStates[0] == [ReadState(context: 7, index: 5)])
    }

    @Test func aNewLeaderDefersReadsUntilItCommittedAnEntryOfItsTerm() throws {
        var cluster = TestCluster(count: 3)
        cluster.drop = { if case .append = $0.kind { return true } else { return false } }
        cluster.campaign(1)
        try cluster[1].readIndex(context: 1)
        cluster.tick(1, times: 2)
        #expect(cluster.readStates[0].isEmpty)
        cluster.heal()
        cluster.tick(1, times: 2)
        #expect(cluster.readStates[0] == [ReadState(context: 1, index: 4)])
    }

    @Test func followersRefuseReadsAndNameTheLeader() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        let error = #expect(throws: RaftError.self) { try cluster[2].readIndex(context: 1) }
        #expect(error?.code == .notLeader)
        #expect(error?.leader == ReplicaID(1))
    }

    @Test func aLeaderThatLosesLeadershipDropsItsPendingReads() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.isolate(1)
        try cluster[1].readIndex(context: 9)
        cluster.tick(1, times: 25)
        #expect(cluster[1].role == .follower)
        cluster.heal()
        cluster.tickAll(times: 30)
        #expect(cluster.readStates[0].isEmpty)
    }

    @Test func aSingleVoterAnswersReadsAtOnce() throws {
        var cluster = TestCluster(count: 1)
        cluster.campaign(1)
        try cluster[1].readIndex(context: 3)
        cluster.deliverAll()
        #expect(cluster.readStates[0] == [ReadState(context: 3, index: 2)])
    }
}
