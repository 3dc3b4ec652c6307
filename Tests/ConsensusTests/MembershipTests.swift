import Testing

@testable import Consensus

@Suite("Membership changes")
struct MembershipChangeTests {
    static let n = (1...5).map { ReplicaID(UInt64($0)) }

    @Test func aChangeIsRefusedUntilTheLeaderCommittedAnEntryOfItsTerm() throws {
        var cluster = TestCluster(count: 4, voters: 3)
        cluster.drop = { if case .append = $0.kind { return true } else { return false } }
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(throws: RaftError(.leaderNotReady, "no entry of term 2 committed yet", leader: Self.n[0])) {
            try cluster[1].proposeChange(.addLearner(Self.n[3]))
        }
        cluster.heal()
        cluster.tick(1)
        _ = try cluster[1].proposeChange(.addLearner(Self.n[3]))
    }

    @Test func onlyOneChangeIsPendingAtATime() throws {
        var cluster = TestCluster(count: 5, voters: 3)
        cluster.campaign(1)
        cluster.isolate(1)
        let position = try cluster[1].proposeChange(.addLearner(Self.n[3]))
        #expect(cluster[1].configuration.learners == [Self.n[3]])  // in force once appended
        let error = #expect(throws: RaftError.self) { try cluster[1].proposeChange(.addLearner(Self.n[4])) }
        #expect(error?.code == .configurationChangePending)
        cluster.heal()
        cluster.tick(1, times: 2)
        #expect(cluster[1].commitIndex >= position.index)
        _ = try cluster[1].proposeChange(.addLearner(Self.n[4]))
    }

    @Test func invalidChangesAreRefused() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        for change in [ConfigurationChange.addVoter(Self.n[1]), .promoteLearner(Self.n[1]), .remove(Self.n[4])] {
            let error = #expect(throws: RaftError.self) { try cluster[1].proposeChange(change) }
            #expect(error?.code == .invalidConfigurationChange)
        }
        #expect(throws: RaftError.self) { try cluster[2].proposeChange(.addLearner(Self.n[3])) }
    }

    @Test func aLearnerReceivesTheLogButNeverCampaignsNorCountsAsAVote() throws {
        var cluster = TestCluster(count: 4, voters: 3)
        cluster.campaign(1)
        _ = try cluster[1].proposeChange(.addLearner(Self.n[3]))
        cluster.deliverAll()
        cluster.propose(1, "x")
        #expect(cluster.log(4) == cluster.log(1))
        #expect(cluster[4].configuration.isLearner(Self.n[3]))
        cluster.isolate(1)
        cluster.tick(4, times: 50)
        #expect(cluster[4].role == .follower)
        #expect(cluster[4].term == 2)
        // A candidate does not count a learner's vote: n2 plus the learner is not a quorum of 3.
        cluster.cut += [(2, 3), (3, 2)]
        cluster.campaign(2)
        #expect(cluster[2].role != .leader)
    }

    @Test func aLearnerIsPromotedOnlyOnceCaughtUp() throws {
        var cluster = TestCluster(count: 4, voters: 3)
        cluster.campaign(1)
        _ = try cluster[1].proposeChange(.addLearner(Self.n[3]))
        cluster.deliverAll()
        cluster.isolate(4)
        for index in 0..<3 { cluster.propose(1, "c\(index)") }
        let error = #expect(throws: RaftError.self) { try cluster[1].proposeChange(.promoteLearner(Self.n[3])) }
        #expect(error?.code == .learnerNotCaughtUp)
        let progress = cluster[1].replicationProgress.first { $0.id == Self.n[3] }
        #expect(progress.map { $0.match < cluster[1].commitIndex } == true)
        cluster.heal()
        cluster.tick(1, times: 2)
        _ = try cluster[1].proposeChange(.promoteLearner(Self.n[3]))
        cluster.deliverAll()
        #expect(cluster[4].configuration.voters == Array(Self.n[0..<4]))
        #expect(cluster[4].isPromotable)
    }

    @Test func aConfigurationEntryTakesEffectWhenAppendedAndIsUndoneByTruncation() throws {
        var cluster = TestCluster(count: 6, voters: 5)
        cluster.campaign(1)
        // Only n2 gets the change, and its acknowledgement is lost.
        cluster.cut = [(2, 1)]
        for raw: UInt64 in 3...5 { cluster.cut += [(1, raw), (raw, 1)] }
        _ = try cluster[1].proposeChange(.addLearner(ReplicaID(6)))
        cluster.deliverAll()
        #expect(cluster[2].configuration.isLearner(ReplicaID(6)))
        #expect(cluster[2].commitIndex < cluster[2].lastIndex)
        // n3...n5 elect a leader without the entry; n2's uncommitted change is overwritten.
        cluster.heal()
        cluster.isolate(1)
        cluster.isolate(2)
        cluster.tickAll(times: 25)
        let leader = try #require((3...5).first { cluster[$0].role == .leader })
        cluster.heal()
        cluster.isolate(1)
        cluster.propose(leader, "y")
        cluster.tickAll(times: 2)
        #expect(!cluster[2].configuration.contains(ReplicaID(6)))
        #expect(cluster.log(2) == cluster.log(leader))
    }

    @Test func aLeaderThatRemovesItselfStepsDownOnceTheRemovalCommits() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        _ = try cluster[1].proposeChange(.remove(Self.n[0]))
        cluster.deliverAll()
        #expect(cluster[1].role == .follower)
        #expect(!cluster[1].isPromotable)
        cluster.tick(1, times: 50)
        #expect(cluster[1].role == .follower)
        cluster.tickAll(times: 25)
        #expect([cluster[2].role, cluster[3].role].contains(.leader))
        #expect(cluster[2].configuration.voters == [Self.n[1], Self.n[2]])
    }

    @Test func aRemovedVoterNoLongerCountsForCommit() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        _ = try cluster[1].proposeChange(.remove(Self.n[2]))
        cluster.deliverAll()
        cluster.isolate(3)
        cluster.cut += [(1, 2), (2, 1)]
        cluster.propose(1, "z")
        // Voters are n1 and n2: without n2 nothing commits.
        #expect(cluster[1].commitIndex < cluster[1].lastIndex)
        cluster.heal()
        cluster.isolate(3)
        cluster.tick(1, times: 2)
        #expect(cluster[1].commitIndex == cluster[1].lastIndex)
    }
}
