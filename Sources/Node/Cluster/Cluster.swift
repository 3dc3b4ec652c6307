import Foundation
import Logging
import Membership
import MembershipTransport
import Synchronization

/// The node's part in the cluster: its view of the members, where each request is served, and the
/// movement of namespaces between members.
///
/// On a clustered node the cluster log decides (see `Cluster+Ownership`): a node serves a namespace
/// only while the directory it applied names it owner at an epoch whose files it holds, and a move
/// changes the owner with one log entry. A stale view costs a forward or a 421, never a second writer.
public final class Cluster: Sendable {
    enum Phase: Sendable, Equatable {
        case joining
        case active
        case leaving
    }

    /// Where a request is served.
    enum Resolution: Sendable {
        /// Here; admitted (the caller must call `exit`).
        case local
        /// It does not exist and is created here: the caller may create it, then resolve again.
        case absent
        /// On another member.
        case forward(MemberState)
    }

    let configuration: NodeConfiguration
    let service: NamespaceService
    let membership: MembershipService?
    let peers: PeerClient?
    /// A clustered node's cluster log (a one-node cluster's is the directory service's).
    let clusterLog: ClusterLog?
    let files: NamespaceFiles
    let logger: Logger
    let phase: Mutex<Phase>
    /// The peer listener's port once bound.
    let peerPort = Mutex<Int?>(nil)
    /// The gossip address of another live process seen with this node's id before this one served.
    let identityConflict = Mutex<String?>(nil)
    /// What the last rebalance found nothing to move under (see `rebalance`).
    let settledPlacement = Mutex<SettledPlacement?>(nil)
    /// What the last follower assignment found nothing to change under, and when it ran.
    let settledFollowers = Mutex<(SettledPlacement, ContinuousClock.Instant)?>(nil)
    /// The follower side of WAL shipping (copies of other owners' namespaces).
    let replicas: ReplicaReceiver
    /// The owner side of WAL shipping (clustered nodes only).
    let shipper: WALShipper?
    var boundPeerPort: Int? { self.peerPort.withLock { $0 } }

    init(
        configuration: NodeConfiguration,
        service: NamespaceService,
        membership: MembershipService?,
        peers: PeerClient?,
        clusterLog: ClusterLog? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        self.service = service
        self.membership = membership
        self.peers = peers
        self.clusterLog = clusterLog
        self.files = NamespaceFiles(configuration: configuration)
        self.logger = logger
        self.phase = Mutex(membership?.configuration.initialLifecycle == .joining ? .joining : .active)
        let log: @Sendable () -> DirectoryLog? = { [service, clusterLog] in service.directory?.log ?? clusterLog?.log }
        self.replicas = ReplicaReceiver(
            copies: ReplicaCopies(dataDirectory: configuration.dataDirectory),
            nodeID: configuration.nodeID,
            logger: logger,
            log: log
        )
        if let membership, let peers {
            self.shipper = WALShipper(
                environment: WALShipper.Environment(
                    nodeID: configuration.nodeID,
                    files: self.files,
                    peers: peers,
                    log: log,
                    peerAddress: { id in
                        membership.members.first { $0.id.rawValue == id }.map(\.metadata.peerAddress)
                    },
                    running: { [service] in await service.supervisor.runningBackends().map(\.name) }
                ),
                metrics: service.metrics,
                logger: logger
            )
        } else {
            self.shipper = nil
        }
    }

    var isClustered: Bool { self.membership != nil }
    /// This node's replica of the cluster log, when it has one.
    var log: DirectoryLog? { self.service.directory?.log ?? self.clusterLog?.log }
    var selfID: String { self.configuration.nodeID }
    var metrics: NodeMetrics { self.service.metrics }
    var locks: KeyedLock { self.service.locks }

    var view: ClusterView {
        guard let membership else { return .single(selfID: self.selfID) }
        // Placement only among members the directory has active (the log refuses anyone else).
        let registered = self.ownership.flatMap { _ in
            self.log?.read { state in
                state.members.values.reduce(into: [String: String]()) { active, member in
                    if member.state == .active { active[member.id] = member.storageID }
                }
            }
        }
        return ClusterView(selfID: self.selfID, members: membership.members, registered: registered)
    }

    /// Able to route: a clustered node must have finished joining, when it has seeds have exchanged
    /// state with the cluster once (a first member without seeds is the cluster), and have a
    /// cluster log a leader has reached (it knows the directory's members and voters).
    var isReady: Bool {
        guard self.membership != nil else { return true }
        return self.phase.withLock({ $0 }) == .active && self.canRoute
    }

    /// Whether this node can decide where requests go: in touch with the cluster (or alone), its
    /// cluster log open with its ownership machine, and a leader reached it at least once. A
    /// joining or leaving node routes too; only an active one takes new namespaces.
    var canRoute: Bool {
        guard let membership else { return true }
        guard membership.isSynced || !membership.hasSeedsOtherThanSelf, let log = self.clusterLog?.log,
            self.ownership != nil
        else { return false }
        return !log.status.voters.isEmpty
    }

    /// Whether this node serves `name` (holds its files at the current epoch).
    func holds(_ name: String) -> Bool { self.service.registry.record(name) != nil }

    /// A request that `resolve` answered `.local` ended.
    func exit(_ name: String) { self.ownership?.finished(name) }

    /// Decides where a request for `name` is served. `forwarded`: it came from another member's
    /// entry.
    func resolve(_ name: String, forwarded: Bool) async throws(NodeError) -> Resolution {
        if self.isClustered {
            guard self.canRoute || forwarded else {
                throw NodeError(
                    .ownerUnavailable,
                    "this node has not joined the cluster yet",
                    status: 503,
                    retryAfter: 1
                )
            }
            return try await self.resolveOwned(name, forwarded: forwarded)
        }
        // A one-node cluster: every namespace in the directory is here.
        return self.holds(name) ? .local : .absent
    }
}
