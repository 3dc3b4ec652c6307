import Consensus
import Testing

@testable import Autopilot

@Suite("Cluster formation")
struct ClusterFormationTests {
    typealias Candidate = ClusterFormation.Candidate

    static func node(_ id: String, cluster: String = "", alive: Bool = true) -> Candidate {
        Candidate(nodeID: id, storageID: "storage-\(id)", clusterID: cluster, isAlive: alive)
    }

    @Test func theLowestOfTheExpectedMembersFoundsAndTheOthersWait() {
        let view = ["n2", "n1", "n3"].map { Self.node($0) }
        #expect(
            ClusterFormation.decide(me: "n1", expect: 3, candidates: view)
                == .found(founders: [
                    Self.node("n1"), Self.node("n2"), Self.node("n3"),
                ])
        )
        guard case .wait = ClusterFormation.decide(me: "n2", expect: 3, candidates: view) else {
            Issue.record("n2 must wait for n1")
            return
        }
    }

    @Test func nobodyFoundsBeforeExpectMembersAreVisibleAlive() {
        let view = [Self.node("n1"), Self.node("n2"), Self.node("n3", alive: false)]
        guard case .wait = ClusterFormation.decide(me: "n1", expect: 3, candidates: view) else {
            Issue.record("a dead member does not count")
            return
        }
        #expect(
            ClusterFormation.decide(me: "n1", expect: 1, candidates: [Self.node("n1")])
                == .found(founders: [
                    Self.node("n1")
                ])
        )
    }

    @Test func aVisibleClusterIsJoinedEvenWhenThisNodeWouldFoundOne() {
        let view = [Self.node("a"), Self.node("b"), Self.node("z", cluster: "c1")]
        #expect(ClusterFormation.decide(me: "a", expect: 2, candidates: view) == .join(clusterID: "c1"))
    }

    @Test func twoVisibleClustersAreJoinedByNobody() {
        let view = [Self.node("a"), Self.node("x", cluster: "c1"), Self.node("y", cluster: "c2")]
        guard case .wait(let reason) = ClusterFormation.decide(me: "a", expect: 1, candidates: view) else {
            Issue.record("two clusters: wait")
            return
        }
        #expect(reason.contains("c1") && reason.contains("c2"))
    }

    @Test func membersWithoutAStorageIDAreIgnored() {
        // Members of the previous build announce no storage id: they cannot take part.
        let view = [Self.node("b"), Candidate(nodeID: "a", storageID: "", clusterID: "", isAlive: true)]
        #expect(ClusterFormation.decide(me: "b", expect: 1, candidates: view) == .found(founders: [Self.node("b")]))
    }

    /// Nodes discover each other in random order and at random times (views are asymmetric and
    /// lag), decide at random moments, and see a founded cluster only after a random delay. With
    /// `expect` equal to the number of nodes, exactly one cluster forms and everyone joins it.
    @Test(arguments: 0..<300) func exactlyOneClusterFormsWhenExpectIsTheDeploySize(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let count = Int(random.next() % 5) + 1
        let ids = (0..<count).map { "node-\(($0 * 7 + Int(seed)) % 11)-\($0)" }
        // knows[i][j]: node i has discovered node j. A node always knows itself.
        var knows = (0..<count).map { i in (0..<count).map { $0 == i } }
        // The cluster node j announces, as node i sees it (gossip spreads it with a lag).
        var seenCluster = Array(repeating: Array(repeating: "", count: count), count: count)
        var cluster = Array(repeating: "", count: count)
        var founders: [String] = []
        for _ in 0..<400 {
            let i = Int(random.next() % UInt64(count))
            switch random.next() % 3 {
            case 0:
                knows[i][Int(random.next() % UInt64(count))] = true
            case 1:
                let j = Int(random.next() % UInt64(count))
                if knows[i][j] { seenCluster[i][j] = cluster[j] }
            default:
                guard cluster[i].isEmpty else { continue }
                let view = (0..<count).filter { knows[i][$0] }.map { j in
                    Candidate(
                        nodeID: ids[j],
                        storageID: "s\(j)",
                        clusterID: j == i ? cluster[i] : seenCluster[i][j],
                        isAlive: true
                    )
                }
                switch ClusterFormation.decide(me: ids[i], expect: count, candidates: view) {
                case .found(let group):
                    #expect(group.count == count)
                    founders.append(ids[i])
                    cluster[i] = "cluster-of-\(ids[i])"
                case .join(let id):
                    cluster[i] = id
                case .wait:
                    break
                }
            }
        }
        #expect(founders.count <= 1, "seed \(seed): founders \(founders)")
        #expect(Set(cluster.filter { !$0.isEmpty }).count <= 1, "seed \(seed): clusters \(cluster)")
    }
}
