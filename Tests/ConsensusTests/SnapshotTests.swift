import Testing

@testable import Consensus

@Suite("Snapshots and compaction")
struct SnapshotTests {
    @Test func aLaggingFollowerReceivesTheSnapshotThenTheRestOfTheLog() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.isolate(3)
        for index in 0..<10 { cluster.propose(1, "c\(index)") }
        #expect(cluster[1].commitIndex == 14)  // 3 bootstrap entries, the no-op, 10 proposals
        cluster.compact(1)
        #expect(cluster[1].firstIndex == 15)
        cluster.propose(1, "after")
        cluster.heal()
        cluster.tick(1, times: 3)
        #expect(cluster.snapshotsReceived[2] == 1)
        #expect(cluster.storage[2].snapshot.data == Array("state@14".utf8))
        #expect(cluster[3].firstIndex == 15)
        #expect(cluster[3].lastIndex == 15)
        #expect(cluster[3].commitIndex == 15)
        #expect(cluster.applied[2].map(\.index) == [1, 2, 3, 4, 15])
        #expect(cluster[1].replicationProgress.first { $0.id == ReplicaID(3) }?.state == .replicate)
    }

    @Test func aLearnerAddedAfterCompactionJoinsThroughASnapshotThatCarriesTheConfiguration() throws {
        var cluster = TestCluster(count: 4, voters: 3)
        cluster.campaign(1)
        for index in 0..<5 { cluster.propose(1, "c\(index)") }
        cluster.compact(1)
        _ = try cluster[1].proposeChange(.addLearner(ReplicaID(4)))
        cluster.deliverAll()
        cluster.tick(1, times: 3)
        #expect(cluster.snapshotsReceived[3] == 1)
        #expect(cluster[4].configuration.isLearner(ReplicaID(4)))
        #expect(cluster.log(4) == cluster.log(1))
        #expect(cluster[4].commitIndex == cluster[1].commitIndex)
    }

    @Test func aLostSnapshotIsResentAfterAnElectionTimeout() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.isolate(3)
        for index in 0..<5 { cluster.propose(1, "c\(index)") }
        cluster.compact(1)
        cluster.heal()
        cluster.drop = { if case .snapshot = $0.kind { return true } else { return false } }
        cluster.tick(1, times: 2)
        #expect(cluster[1].replicationProgress.first { $0.id == ReplicaID(3) }?.state == .snapshot)
        cluster.drop = { _ in false }
        cluster.tick(1, times: 12)
        #expect(cluster.snapshotsReceived[2] == 1)
        #expect(cluster[3].commitIndex == cluster[1].commitIndex)
    }

    @Test func compactionIsLimitedToAppliedEntriesAndRestartsFromTheSnapshot() throws {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        for index in 0..<4 { cluster.propose(1, "c\(index)") }
        #expect(throws: RaftError.self) { try cluster[2].compact(through: cluster[2].appliedIndex + 1, data: []) }
        cluster.compact(2)
        #expect(throws: RaftError.self) { try cluster[2].compact(through: cluster[2].appliedIndex, data: []) }
        let restarted = try RaftNode(settings: cluster[2].settings, restoring: cluster.storage[1])
        #expect(restarted.firstIndex == 9)
        #expect(restarted.appliedIndex == 8)
        #expect(restarted.configuration == ClusterConfiguration(voters: [1, 2, 3].map { ReplicaID($0) }))
        #expect(throws: RaftError.self) {
            var broken = cluster.storage[1]
            broken.entries = [LogEntry(term: 2, index: 10, payload: .empty)]
            _ = try RaftNode(settings: cluster[2].settings, restoring: broken)
        }
        // A commit index beyond the persisted log means lost writes: refused, not clamped.
        #expect(throws: RaftError.self) {
            var broken = cluster.storage[1]
            broken.hardState.commit = cluster.storage[1].snapshot.metadata.index + 1
            _ = try RaftNode(settings: cluster[2].settings, restoring: broken)
        }
    }

    @Test func aSnapshotTheFollowerAlreadyCoversOnlyAdvancesItsCommit() {
        var cluster = TestCluster(count: 2)
        cluster.campaign(1)
        cluster.propose(1, "a")
        let snapshot = cluster[1].latestSnapshot
        var stale = snapshot
        stale.metadata.index = 0
        cluster[2].step(
            RaftMessage(from: ReplicaID(1), to: ReplicaID(2), term: cluster[1].term, kind: .snapshot(stale))
        )
        let ready = cluster[2].ready()
        #expect(ready.snapshot == nil)
        #expect(ready.messages.first?.kind == .appendAccepted(index: 4))
    }
}
