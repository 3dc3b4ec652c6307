/// How a node without a cluster log gets one: it founds the cluster, joins one, or waits. Pure: the
/// shell passes what gossip shows and carries out the decision.
///
/// Rules (`TURSO_BOOTSTRAP_EXPECT` = `expect`):
/// - a member that already belongs to a cluster is joined (as a learner the leader adds): a node
///   never founds a second cluster beside a visible one;
/// - members of two different clusters visible at once is an operator error: wait and say so;
/// - otherwise, once `expect` live members without a cluster are visible, the one with the lowest
///   node id among them founds the cluster with the `expect` lowest as voters; everyone else waits
///   until that cluster shows in gossip and joins it.
///
/// Only one node decides to found, so two founders need two nodes that each see `expect` members
/// without cluster and not each other's lower id: impossible when `expect` is the number of nodes
/// of the first deploy (each then sees all of them). With fewer, two groups that discover each
/// other late can each found one (as with Consul's `bootstrap_expect`); the chart sets it to the
/// replica count (at most 5).
public enum ClusterFormation {
    /// A member as gossip shows it.
    public struct Candidate: Sendable, Equatable {
        public var nodeID: String
        public var storageID: String
        /// Empty while it belongs to no cluster.
        public var clusterID: String
        public var isAlive: Bool

        public init(nodeID: String, storageID: String, clusterID: String, isAlive: Bool) {
            self.nodeID = nodeID
            self.storageID = storageID
            self.clusterID = clusterID
            self.isAlive = isAlive
        }
    }

    public enum Decision: Sendable, Equatable {
        /// Nothing to do yet; `reason` says what is awaited (for the log).
        case wait(reason: String)
        /// Found the cluster with these members as its voters (this node among them).
        case found(founders: [Candidate])
        /// Join this cluster (with an empty log; the leader adds this node as a learner).
        case join(clusterID: String)
    }

    /// The decision of node `me` (which appears in `candidates`, as gossip shows itself).
    public static func decide(me: String, expect: Int, candidates: [Candidate]) -> Decision {
        let live = candidates.filter { $0.isAlive && !$0.storageID.isEmpty }
        let clusters = Set(live.map(\.clusterID).filter { !$0.isEmpty })
        if clusters.count > 1 {
            return .wait(
                reason:
                    "members of \(clusters.count) different clusters are visible (\(clusters.sorted().joined(separator: ", "))); this node joins none of them"
            )
        }
        if let cluster = clusters.first { return .join(clusterID: cluster) }
        let stateless = live.sorted { $0.nodeID < $1.nodeID }
        guard stateless.count >= max(1, expect) else {
            return .wait(reason: "waiting for \(expect) members to found the cluster; \(stateless.count) visible")
        }
        guard let first = stateless.first, first.nodeID == me else {
            return .wait(reason: "member \(stateless.first?.nodeID ?? "?") founds the cluster; waiting to join it")
        }
        return .found(founders: Array(stateless.prefix(max(1, expect))))
    }
}
