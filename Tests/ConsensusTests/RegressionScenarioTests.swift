import Testing

@testable import Consensus

/// Scenarios of etcd-io/raft's interaction tests (`testdata/*.txt`), rewritten for this module.
@Suite("Regression scenarios")
struct RegressionScenarioTests {
    /// campaign_learner_must_vote: a learner that the candidate already counts as a voter (its
    /// promotion is in the candidate's log, not yet in the learner's) must vote, or the group can
    /// be stuck with a quorum of the latest configuration up.
    @Test func aLearnerNotYetAwareOfItsPromotionStillVotes() throws {
        var cluster = TestCluster(count: 3, voters: 2)
        cluster.campaign(1)
        _ = try cluster[1].proposeChange(.addLearner(ReplicaID(3)))
        cluster.deliverAll()
        cluster.tick(1, times: 2)
        cluster.cut = [(1, 3)]  // n3 misses its promotion
        _ = try cluster[1].proposeChange(.promoteLearner(ReplicaID(3)))
        cluster.deliverAll()
        #expect(cluster[2].configuration.isVoter(ReplicaID(3)))
        #expect(cluster[3].configuration.isLearner(ReplicaID(3)))
        cluster.heal()
        cluster.isolate(1)
        cluster.tickAll(times: 25)
        #expect(cluster[2].role == .leader)
        #expect(cluster[3].configuration.isVoter(ReplicaID(3)))
    }

    /// lagging_commit: after a blip that loses a follower's acknowledgement and the commit update,
    /// one heartbeat round brings the follower's commit index up to date.
    @Test func aFollowerThatMissedTheCommitCatchesUpOnTheNextHeartbeat() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        // n3's acknowledgements and the commit updates to n3 are lost.
        cluster.cut = [(3, 1)]
        cluster.drop = { message in
            if case .append(_, _, let entries, _) = message.kind {
                return message.to == ReplicaID(3) && entries.isEmpty
            }
            return false
        }
        cluster.propose(1, "a")
        cluster.propose(1, "b")
        #expect(cluster[1].commitIndex == 6)
        #expect(cluster[3].lastIndex == 6)
        #expect(cluster[3].commitIndex < 6)
        cluster.heal()
        cluster.tick(1)
        #expect(cluster[3].commitIndex == 6)
    }

    /// slow_follower_after_compaction: a throttled follower whose next entries the leader compacts
    /// away is caught up by a snapshot after its rejection of a probe.
    @Test func aThrottledFollowerBehindACompactionGetsASnapshot() {
        var cluster = TestCluster(count: 3) { $0.maxInflightMessages = 1 }
        cluster.campaign(1)
        cluster.cut = [(1, 3)]
        for index in 0..<6 { cluster.propose(1, "c\(index)") }
        cluster.compact(1)
        cluster.heal()
        cluster.tick(1, times: 3)
        #expect(cluster.snapshotsReceived[2] == 1)
        #expect(cluster.log(3) == cluster.log(1))
        #expect(cluster[3].commitIndex == cluster[1].commitIndex)
    }

    /// heartbeat_resp_recovers_from_probing: a caught-up follower pushed back to probing (as after
    /// an unreachable report) returns to replicate state after one heartbeat round.
    @Test func aCaughtUpProbingFollowerReturnsToReplicateAfterAHeartbeat() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        let position = cluster[1].progressIndex(of: ReplicaID(2))!
        cluster[1].progress[position].becomeProbe()
        #expect(cluster[1].replicationProgress[position].state == .probe)
        cluster.tick(1)
        #expect(cluster[1].replicationProgress[position].state == .replicate)
    }

    /// replicate_pause: appends to a follower stop when its inflight window is full and resume as
    /// acknowledgements free it.
    @Test func appendsPauseWhenTheWindowIsFullAndResumeOnAcknowledgement() throws {
        var cluster = TestCluster(count: 3) { $0.maxInflightMessages = 3 }
        cluster.campaign(1)
        cluster.cut = [(3, 1)]
        cluster.trace = []
        for index in 0..<5 { _ = try cluster[1].propose([UInt8(index)]) }
        cluster.deliverAll()
        let toN3 = cluster.trace.filter {
            if case .append = $0.kind { return $0.to == ReplicaID(3) }
            return false
        }
        #expect(toN3.count == 3)
        #expect(cluster[1].commitIndex == 9)  // n2 keeps the quorum going
        cluster.heal()
        cluster.tick(1, times: 2)
        #expect(cluster[3].lastIndex == 9)
        #expect(cluster[3].commitIndex == 9)
    }
}
