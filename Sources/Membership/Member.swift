/// Where a member is in its life in the cluster (set by the member itself, spread with its state).
public enum MemberLifecycle: UInt8, Hashable, Sendable {
    case joining
    case active
    case leaving
}

/// What a member announces about itself.
public struct MemberMetadata: Hashable, Sendable {
    public var id: NodeID
    /// Gossip listener, `host:port`.
    public var gossipAddress: String
    /// Inter-node listener for forwarded requests and data movement, `host:port`.
    public var peerAddress: String
    /// Client-facing data listener, `host:port`.
    public var dataAddress: String
    public var zone: String
    public var weight: Double
    public var version: String
    public var lifecycle: MemberLifecycle
    /// Random per process: tells two live processes that claim one node id apart.
    public var instance: UInt64
    /// The identity of the member's data directory (made with it): a wiped disk comes back with a
    /// new one under the same node id.
    public var storageID: String
    /// The cluster log the member belongs to; empty until it has bootstrapped or joined one.
    public var clusterID: String

    public init(
        id: NodeID,
        gossipAddress: String,
        peerAddress: String = "",
        dataAddress: String = "",
        zone: String = "",
        weight: Double = 1,
        version: String = "",
        lifecycle: MemberLifecycle = .active,
        instance: UInt64 = 0,
        storageID: String = "",
        clusterID: String = ""
    ) {
        self.id = id
        self.gossipAddress = gossipAddress
        self.peerAddress = peerAddress
        self.dataAddress = dataAddress
        self.zone = zone
        self.weight = weight
        self.version = version
        self.lifecycle = lifecycle
        self.instance = instance
        self.storageID = storageID
        self.clusterID = clusterID
    }
}

/// A member's liveness as this node believes it.
public enum MemberStatus: UInt8, Hashable, Comparable, Sendable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    case left = 3

    public static func < (lhs: MemberStatus, rhs: MemberStatus) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// One member's state as gossiped: metadata, status and incarnation (and who accused it, for suspicion).
public struct MemberState: Hashable, Sendable {
    public var metadata: MemberMetadata
    public var status: MemberStatus
    public var incarnation: Incarnation
    /// For `.suspect`: the member that suspects it (Lifeguard counts independent accusers).
    public var accuser: NodeID?

    public init(metadata: MemberMetadata, status: MemberStatus, incarnation: Incarnation, accuser: NodeID? = nil) {
        self.metadata = metadata
        self.status = status
        self.incarnation = incarnation
        self.accuser = accuser
    }

    public var id: NodeID { self.metadata.id }

    /// SWIM precedence: a higher incarnation wins; at equal incarnations alive < suspect < dead < left.
    public func supersedes(_ other: MemberState) -> Bool {
        if self.incarnation != other.incarnation { return self.incarnation > other.incarnation }
        return self.status > other.status
    }

    public var digest: MemberDigest { MemberDigest(id: self.id, incarnation: self.incarnation, status: self.status) }
}

/// The short form of a member's state exchanged by push-pull synchronisation.
public struct MemberDigest: Hashable, Sendable {
    public var id: NodeID
    public var incarnation: Incarnation
    public var status: MemberStatus

    public init(id: NodeID, incarnation: Incarnation, status: MemberStatus) {
        self.id = id
        self.incarnation = incarnation
        self.status = status
    }

    /// True when a state with this digest would replace `state` (or `state` is unknown).
    func isNewer(than state: MemberState?) -> Bool {
        guard let state else { return true }
        if self.incarnation != state.incarnation { return self.incarnation > state.incarnation }
        return self.status > state.status
    }
}
