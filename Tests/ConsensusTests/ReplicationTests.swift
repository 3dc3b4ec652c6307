import Testing

@testable import Consensus

/// Builds a persistent state whose log has the given terms from index 1. The configuration is in
/// the snapshot base at index 0 (as a shell that seeds its storage with the configuration would do,
/// etcd's recommended alternative to `Bootstrap`): every replica built here is a founder, so the
/// figure-8 logs keep their textbook indices.
func state(
    terms: [UInt64],
    term: UInt64,
    voters: [UInt64] = [1, 2, 3],
    commit: UInt64 = 0
) -> PersistentState {
    let configuration = ClusterConfiguration(voters: voters.map { ReplicaID($0) })
    return PersistentState(
        hardState: HardState(term: term, vote: nil, commit: commit),
        snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, configuration: configuration)),
        entries: terms.enumerated().map {
            LogEntry(term: $0.element, index: UInt64($0.offset + 1), payload: .command([UInt8($0.offset)]))
        }
    )
}

@Suite("Replication")
struct ReplicationTests {
    @Test func proposalsAreReplicatedCommittedAndAppliedInOrder() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        for text in ["a", "b", "c"] { cluster.propose(1, text) }
        for raw in 1...3 {
            #expect(cluster[raw].commitIndex == 7)  // 3 bootstrap entries, the no-op, a, b, c
            let commands = cluster.applied[raw - 1].compactMap { entry -> String? in
                if case .command(let bytes) = entry.payload { return String(decoding: bytes, as: UTF8.self) }
                return nil
            }
            #expect(commands == ["a", "b", "c"])
        }
    }

    @Test func aFollowerTruncatesItsConflictingSuffixToMatchTheLeader() {
        // n1 (term 3 entry at 3) wins; n2 holds uncommitted entries of term 2 at 3...5.
        var cluster = TestCluster(states: [
            state(terms: [1, 1, 3], term: 3),
            state(terms: [1, 1, 2, 2, 2], term: 2),
            state(terms: [1, 1], term: 2),
        ])
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster.log(2) == [1, 1, 3, 4])
        #expect(cluster.log(3) == [1, 1, 3, 4])
        #expect(cluster[2].commitIndex == 4)
    }

    @Test func rejectionHintsSkipADivergingTermInOneRoundTrip() {
        let long = [UInt64](repeating: 1, count: 2) + [UInt64](repeating: 2, count: 50)
        var cluster = TestCluster(states: [
            state(terms: [1, 1] + [UInt64](repeating: 3, count: 5), term: 3),
            state(terms: long, term: 2),
            state(terms: [1, 1], term: 3),
        ])
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster.log(2) == cluster.log(1))
        let rejections = cluster.trace.filter {
            if case .appendRejected = $0.kind { return $0.from == ReplicaID(2) }
            return false
        }
        #expect(rejections.count <= 2, "rejections: \(rejections)")
    }

    @Test func figure8ALeaderDoesNotCommitAnOlderTermEntryByCountingReplicas() {
        let cluster = Self.figure8(mutations: [])
        // Index 2 (term 2) is on n1, n2 and n3 — a majority of five — but not committed.
        #expect(cluster[1].role == .leader)
        #expect(cluster[2].lastIndex == 2 && cluster[3].lastIndex == 2)
        #expect(cluster[1].commitIndex == 1)
    }

    @Test func figure8WithTheMutationTheOldEntryIsCommittedByCounting() {
        let cluster = Self.figure8(mutations: [.commitOldTermEntries])
        #expect(cluster[1].commitIndex == 2)
    }

    @Test func figure8OnceAnEntryOfTheLeadersTermIsOnAMajorityEverythingCommits() {
        var cluster = Self.figure8(mutations: [])
        cluster.heal()
        cluster.tick(1)
        #expect(cluster[1].commitIndex == 3)
    }

    /// n1 holds an entry of term 2 at index 2 and becomes leader in term 4; it gets index 2 to n2
    /// and n3, while every append carrying its own no-op (index 3) is lost after the first probe.
    static func figure8(mutations: RaftConfiguration.Mutations) -> TestCluster {
        let voters: [UInt64] = [1, 2, 3, 4, 5]
        var cluster = TestCluster(
            states: [state(terms: [1, 2], term: 3, voters: voters, commit: 1)]
                + (2...5).map { _ in state(terms: [1], term: 3, voters: voters, commit: 1) }
        ) { settings in
            settings.maxBytesPerMessage = 1
            settings.mutations = mutations
        }
        final class Probed { var ids: [ReplicaID] = [] }
        let probed = Probed()
        cluster.drop = { message in
            guard case .append(_, _, let entries, _) = message.kind, entries.contains(where: { $0.index == 3 }) else {
                return false
            }
            // The first probe (prev = 2) reaches each follower, which lacks index 2 and rejects it.
            if probed.ids.contains(message.to) { return true }
            probed.ids.append(message.to)
            return false
        }
        cluster.cut = [(1, 4), (4, 1), (1, 5), (5, 1)]
        cluster.campaign(1)
        return cluster
    }

    @Test func appendsArePipelinedUpToTheInflightWindowAndBatchedByBytes() {
        var cluster = TestCluster(count: 2) { settings in
            settings.maxInflightMessages = 2
            settings.maxBytesPerMessage = 40
        }
        cluster.campaign(1)
        cluster.cut = [(2, 1)]  // acknowledgements are lost: the window fills
        cluster.trace = []
        for index in 0..<6 { _ = try! cluster[1].propose([UInt8(index)]) }
        cluster.deliverAll()
        let appends = cluster.trace.compactMap { message -> [LogEntry]? in
            if case .append(_, _, let entries, _) = message.kind, message.to == ReplicaID(2) { return entries }
            return nil
        }
        #expect(appends.count == 2)
        #expect(appends.allSatisfy { $0.count <= 2 })
        #expect(cluster[1].replicationProgress.first { $0.id == ReplicaID(2) }?.state == .replicate)
        cluster.heal()
        cluster.tick(1, times: 3)
        #expect(cluster[2].commitIndex == 9)  // 2 bootstrap entries, the no-op, 6 proposals
    }

    @Test func aLostAppendIsRepairedThroughProbing() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.cut = [(1, 3)]
        cluster.propose(1, "lost")
        cluster.heal()
        cluster.propose(1, "next")
        cluster.tick(1, times: 2)
        #expect(cluster.log(3) == cluster.log(1))
        #expect(cluster[3].commitIndex == 6)
    }

    @Test func aRestartedReplicaRecoversItsLogAndTermFromStorage() {
        var cluster = TestCluster(count: 3)
        cluster.campaign(1)
        cluster.propose(1, "a")
        let restarted = try! RaftNode(settings: cluster[2].settings, restoring: cluster.storage[1])
        #expect(restarted.term == 2)
        #expect(restarted.lastIndex == 5)
        #expect(restarted.commitIndex == cluster.storage[1].hardState.commit)
        #expect(restarted.role == .follower)
    }
}
