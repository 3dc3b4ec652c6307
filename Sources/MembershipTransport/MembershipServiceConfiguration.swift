import Membership

/// How a node takes part in membership: its identity and addresses, the seeds, timing, and TLS.
public struct MembershipServiceConfiguration: Sendable {
    public var nodeID: NodeID
    /// Gossip listener. Default `0.0.0.0:7946`.
    public var listenHost = "0.0.0.0"
    public var listenPort = 7946
    /// `host:port` other members use to reach this node's gossip listener.
    public var advertisedGossipAddress: String
    public var peerAddress = ""
    public var dataAddress = ""
    public var zone = ""
    public var weight = 1.0
    public var version = ""
    /// The identity of the node's data directory, and the cluster log it belongs to (empty before
    /// it has one); both are announced with the member.
    public var storageID = ""
    public var clusterID = ""
    /// The lifecycle this node announces first (`joining` for a node that copies data before it serves).
    public var initialLifecycle: MemberLifecycle = .active
    /// Gossip addresses (`host:port`, the host an IP or a DNS name that may resolve to several
    /// members) to join through.
    public var seeds: [String] = []
    public var membership: MembershipConfiguration = .lan
    /// Mutual TLS material. Nil only with `allowInsecure` (development).
    public var tls: TLSMaterial?
    public var allowInsecure = false
    /// How often the state machine's timers are checked. Default 20 ms.
    public var tickInterval: Duration = .milliseconds(20)
    /// How often certificate files are checked for changes. Default 5 s.
    public var tlsReloadInterval: Duration = .seconds(5)

    public init(nodeID: NodeID, advertisedGossipAddress: String) {
        self.nodeID = nodeID
        self.advertisedGossipAddress = advertisedGossipAddress
    }

    public func validate() throws(MembershipTransportError) {
        if self.tls == nil && !self.allowInsecure {
            throw .tlsMaterial("membership requires TLS material (TURSO_TLS_CA, TURSO_TLS_CERT, TURSO_TLS_KEY)")
        }
        guard !self.nodeID.rawValue.isEmpty else { throw .tlsMaterial("the node id must not be empty") }
    }
}
