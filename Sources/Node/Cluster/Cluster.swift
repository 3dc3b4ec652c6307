import Foundation
import Logging
import Membership
import MembershipTransport
import Synchronization

/// The node's part in the cluster: its view of the members, where each request is served, and the
/// movement of namespaces between members (claims and handoffs).
///
/// One rule keeps every namespace single-writer: only the node that *holds* a namespace (has it in
/// its registry, not fenced) serves it, and a handoff moves holding atomically (the old holder
/// fences, the new one verifies and registers, then the old one forgets). Views only route requests;
/// a stale view costs a forward or a 421, never a second writer.
public final class Cluster: Sendable {
    enum Phase: Sendable, Equatable {
        case joining
        case active
        case leaving
    }

    /// Where a request is served.
    enum Resolution: Sendable {
        /// Here; admitted to the gate (the caller must call `exit`).
        case local
        /// Nobody holds it and this node owns it: the caller may create it, then resolve again.
        case absent
        /// On another member; `handedOver` when this node just handed it there.
        case forward(MemberState, handedOver: Bool)
    }

    /// What asking every other member about a namespace found.
    enum ClaimOutcome: Sendable, Equatable {
        case received
        case nobody
        case heldElsewhere(owner: String?)
        case unknown(member: String)
    }

    let configuration: NodeConfiguration
    let service: NamespaceService
    let membership: MembershipService?
    let peers: PeerClient?
    /// A clustered node's cluster log (a one-node cluster's is the directory service's).
    let clusterLog: ClusterLog?
    let gate = NamespaceGate()
    let files: NamespaceFiles
    let knownMembers: KnownMembers
    let logger: Logger
    let phase: Mutex<Phase>
    private let claims = Mutex<[String: Task<ClaimOutcome, Never>]>([:])
    /// Namespaces whose handoff outcome is unknown (the new holder did not confirm): not served here
    /// until the new holder says whether it took them.
    let unresolved = Mutex<[String: String]>([:])
    /// The peer listener's port once bound.
    let peerPort = Mutex<Int?>(nil)
    /// The gossip address of another live process seen with this node's id before this one served.
    let identityConflict = Mutex<String?>(nil)
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
        self.knownMembers = KnownMembers(stateDirectory: configuration.stateDirectory)
        self.logger = logger
        self.phase = Mutex(membership?.configuration.initialLifecycle == .joining ? .joining : .active)
        // A handoff interrupted by a crash: not served until its target says whether it took it
        // (loaded before any listener starts).
        if let pending = try? service.registry.pendingHandoffs(), !pending.isEmpty {
            self.unresolved.withLock { $0 = pending }
            logger.warning(
                "handoffs interrupted by a restart; their namespaces wait for the targets' answers",
                metadata: ["namespaces": "\(pending.keys.sorted())"]
            )
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
        return ClusterView(selfID: self.selfID, members: membership.members)
    }

    /// Able to route: a clustered node must have finished joining and, when it has seeds, have
    /// exchanged state with the cluster once (a first member without seeds is the cluster).
    var isReady: Bool {
        guard let membership else { return true }
        return self.phase.withLock { $0 } == .active && (membership.isSynced || !membership.hasSeedsOtherThanSelf)
    }

    func holds(_ name: String) -> Bool {
        self.service.registry.record(name) != nil && self.unresolved.withLock { $0[name] == nil }
    }

    /// Decides where a request for `name` is served. `forwarded`: it came from another member's
    /// entry; `handedOver`: a former holder passed it on.
    func resolve(_ name: String, forwarded: Bool, handedOver: Bool) async throws(NodeError) -> Resolution {
        for _ in 0..<3 {
            if self.holds(name) {
                switch await self.gate.enter(name, timeout: .seconds(15)) {
                case .admitted:
                    if self.holds(name) { return .local }
                    self.gate.exit(name)
                    continue
                case .moved(let member):
                    return try self.redirect(name, to: member, forwarded: forwarded || handedOver)
                case .timedOut:
                    throw NodeError.ownerUnavailable(
                        "namespace \(name) is being handed over to another member; retry shortly",
                        owner: nil
                    )
                }
            }
            if let member = self.gate.movedTo(name) {
                return try self.redirect(name, to: member, forwarded: forwarded || handedOver)
            }
            guard self.isClustered else { return .absent }
            guard self.isReady || forwarded else {
                throw NodeError(
                    .ownerUnavailable,
                    "this node has not joined the cluster yet",
                    status: 503,
                    retryAfter: 1
                )
            }
            switch self.view.route(name, forwarded: forwarded || handedOver) {
            case .owner:
                switch await self.claim(name) {
                case .received: continue
                case .nobody: return .absent
                case .heldElsewhere(let owner):
                    throw NodeError.ownerUnavailable(
                        "namespace \(name) is moving between members; retry shortly",
                        owner: owner
                    )
                case .unknown(let member):
                    throw NodeError.ownerUnavailable(
                        "member \(member) is unreachable and may hold namespace \(name); it is not created elsewhere meanwhile",
                        owner: member
                    )
                }
            case .forward(let owner):
                return .forward(owner, handedOver: false)
            case .ownerDown(let owner):
                throw NodeError.ownerUnavailable(
                    "namespace \(name) is owned by member \(owner.id.rawValue), which is down",
                    owner: owner.id.rawValue
                )
            case .misdirected(let owner):
                throw NodeError(
                    .misdirected,
                    "this member does not own namespace \(name)",
                    status: 421,
                    owner: owner?.id.rawValue
                )
            case .noOwner:
                throw NodeError.ownerUnavailable("no active member can own namespace \(name) right now", owner: nil)
            }
        }
        throw NodeError.ownerUnavailable("namespace \(name) is moving between members; retry shortly", owner: nil)
    }

    private func redirect(_ name: String, to member: String, forwarded: Bool) throws(NodeError) -> Resolution {
        if forwarded {
            throw NodeError(.misdirected, "namespace \(name) moved to member \(member)", status: 421, owner: member)
        }
        guard let state = self.view.member(member) else {
            throw NodeError.ownerUnavailable(
                "namespace \(name) moved to member \(member), which is unknown",
                owner: member
            )
        }
        return .forward(state, handedOver: true)
    }

    /// Asks every other member whether it holds `name`, and has a holder whose view agrees that this
    /// node owns it hand it over. One claim per namespace runs at a time; concurrent callers share it.
    func claim(_ name: String) async -> ClaimOutcome {
        let task = self.claims.withLock { claims -> Task<ClaimOutcome, Never> in
            if let running = claims[name] { return running }
            let task = Task { await self.runClaim(name) }
            claims[name] = task
            return task
        }
        let outcome = await task.value
        self.claims.withLock { claims in
            if claims[name] == task { claims[name] = nil }
        }
        return outcome
    }

    private func runClaim(_ name: String) async -> ClaimOutcome {
        guard let peers else { return .nobody }
        let others = self.view.others
        let selfID = self.selfID
        let answers = await withTaskGroup(of: ClaimOutcome.self) { group in
            for member in others {
                group.addTask {
                    guard member.status != .dead else { return .unknown(member: member.id.rawValue) }
                    do {
                        let (_, answer) = try await peers.call(
                            .POST,
                            member.metadata.peerAddress,
                            "/_peer/v1/namespaces/\(name)/claim",
                            headers: [(ClusterHeaders.node.rawName, selfID)],
                            timeout: .seconds(120),
                            answer: ClaimAnswer.self
                        )
                        guard let answer else { return .unknown(member: member.id.rawValue) }
                        switch answer.state {
                        case .handedOff: return .received
                        case .absent: return .nobody
                        case .held: return .heldElsewhere(owner: answer.owner)
                        }
                    } catch {
                        return .unknown(member: member.id.rawValue)
                    }
                }
            }
            var answers: [ClaimOutcome] = []
            for await answer in group { answers.append(answer) }
            return answers
        }
        if self.service.registry.record(name) != nil || answers.contains(.received) { return .received }
        if let held = answers.first(where: { if case .heldElsewhere = $0 { true } else { false } }) { return held }
        if let unknown = answers.first(where: { if case .unknown = $0 { true } else { false } }) { return unknown }
        return .nobody
    }
}
