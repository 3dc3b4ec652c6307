import Membership
import Placement

/// The cluster as this node sees it at one moment: its members and who owns which namespace.
///
/// The placement set is the members whose lifecycle is `active` and that have not left, dead ones
/// included: until failover exists, a dead owner keeps its namespaces (they answer 503 until it
/// returns) instead of having them re-created empty elsewhere. Ownership therefore moves only when a
/// member becomes active (join) or stops being active (leave), and each move is a handoff. With a
/// cluster log, a member must also be active in the directory under the storage id gossip shows:
/// the log refuses to give a namespace to anyone else (one not registered yet, removed, or an old
/// disk come back), so placement never picks them.
public struct ClusterView: Sendable {
    public let selfID: String
    public let members: [MemberState]
    public let placement: RendezvousPlacement
    private let byID: [String: MemberState]

    /// - Parameters:
    ///   - treatSelfAsActive: a joining node uses this to see what it will own once active.
    ///   - registered: the directory's active members (node id to storage id), when there is a log.
    public init(
        selfID: String,
        members: [MemberState],
        treatSelfAsActive: Bool = false,
        registered: [String: String]? = nil
    ) {
        self.selfID = selfID
        self.members = members
        self.byID = Dictionary(members.map { ($0.id.rawValue, $0) }, uniquingKeysWith: { first, _ in first })
        let eligible = members.filter { member in
            // Witnesses (weight 0) hold no namespaces.
            guard member.status != .left, member.metadata.weight > 0 else { return false }
            if let registered, registered[member.id.rawValue] != member.metadata.storageID { return false }
            if treatSelfAsActive && member.id.rawValue == selfID { return true }
            return member.metadata.lifecycle == .active
        }
        self.placement = RendezvousPlacement(
            members: eligible.map {
                PlacementMember(id: $0.id.rawValue, weight: $0.metadata.weight, zone: $0.metadata.zone)
            }
        )
    }

    /// The view of a node that is not clustered: itself only, owner of everything.
    public static func single(selfID: String) -> ClusterView {
        ClusterView(
            selfID: selfID,
            members: [
                MemberState(
                    metadata: MemberMetadata(id: NodeID(selfID), gossipAddress: ""),
                    status: .alive,
                    incarnation: Incarnation(0)
                )
            ]
        )
    }

    public func member(_ id: String) -> MemberState? { self.byID[id] }

    /// The owner of `namespace`: rank 1 by rendezvous hashing over the placement set.
    public func owner(of namespace: String) -> MemberState? {
        self.placement.owner(of: namespace).flatMap { self.byID[$0.id] }
    }

    public func isOwner(_ namespace: String) -> Bool { self.placement.owner(of: namespace)?.id == self.selfID }

    /// Members other than this node that can take namespaces now: alive and active.
    public var receivers: [MemberState] { self.others.filter(\.canReceive) }

    /// Members other than this node that may hold data: everyone that has not left.
    public var others: [MemberState] {
        self.members.filter { $0.id.rawValue != self.selfID && $0.status != .left }
    }

    /// Where a request for a namespace this node does not hold should go.
    public enum Route: Equatable, Sendable {
        /// This node owns it: serve (after making sure nobody else holds it).
        case owner
        /// Forward to the owner.
        case forward(MemberState)
        /// The owner is down; answer 503 naming it.
        case ownerDown(MemberState)
        /// A forwarded request reached a node that does not own it: 421 naming the owner this node sees.
        case misdirected(MemberState?)
        /// No active member at all (every member is joining or leaving).
        case noOwner
    }

    public func route(_ namespace: String, forwarded: Bool) -> Route {
        guard let owner = self.owner(of: namespace) else { return .noOwner }
        if owner.id.rawValue == self.selfID { return .owner }
        if forwarded { return .misdirected(owner) }
        if owner.status == .dead { return .ownerDown(owner) }
        return .forward(owner)
    }
}

extension MemberState {
    /// Alive and active: it serves, and namespaces can be copied from or handed to it.
    var canReceive: Bool { self.status == .alive && self.metadata.lifecycle == .active }
}
