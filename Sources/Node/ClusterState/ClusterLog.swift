import Autopilot
import Consensus
import Directory
import Foundation
import Logging
import Membership
import MembershipTransport
import Synchronization

/// The cluster log of a clustered node, and everything around it that gossip feeds: how the node
/// gets a log (`ClusterFormation`: found the cluster with the expected members, or join the one it
/// sees), where the other replicas listen (their storage ids in gossip give their replica ids),
/// and, on the leader, who is in the log (`Roster`) and which members vote (`Autopilot`).
///
/// A node that already has a log opens it at once, whatever gossip shows: a whole-cluster restart
/// recovers from the persisted logs, with any new addresses.
final class ClusterLog: Sendable {
    static let interval: Duration = .milliseconds(500)

    private struct Steward {
        var autopilot: Autopilot
        /// Since when each replica has been seen dead or missing (absent while it is alive).
        var downSince: [UInt64: Duration] = [:]
        var lastWait = ""
        var lastRefusal = ""
        /// When this node opened a log of a cluster it joined, until a leader reached it.
        var joinedAt: ContinuousClock.Instant?
    }

    private let current = Mutex<DirectoryLog?>(nil)
    private let steward: Mutex<Steward>
    private let origin = ContinuousClock.now
    let configuration: NodeConfiguration
    let identity: StorageIdentity
    private let metrics: NodeMetrics
    private let logger: Logger

    /// Opens the log when this node has one (it then needs no gossip to restart).
    init(
        configuration: NodeConfiguration,
        identity: StorageIdentity,
        metrics: NodeMetrics,
        logger: Logger
    ) throws(NodeError) {
        self.configuration = configuration
        self.identity = identity
        self.metrics = metrics
        self.logger = logger
        var autopilot = Autopilot.Configuration()
        autopilot.targetVoters = configuration.voters
        if configuration.membershipPreset == "local-testing" {
            autopilot.stabilization = .seconds(2)
            autopilot.deadVoterGrace = .seconds(6)
        }
        self.steward = Mutex(Steward(autopilot: Autopilot(configuration: autopilot)))
        if try RaftStore.hasState(directory: configuration.stateDirectory) {
            let log = try DirectoryLog(
                stateDirectory: configuration.stateDirectory,
                identity: identity,
                metrics: metrics,
                logger: logger
            )
            self.current.withLock { $0 = log }
        }
    }

    /// The log, once this node has one.
    var log: DirectoryLog? { self.current.withLock { $0 } }

    /// The cluster this node belongs to ("" before it has a log).
    var clusterID: String { self.log?.clusterID ?? "" }

    /// The replica id of the data directory `storageID` (how gossip names Raft replicas).
    static func replica(_ storageID: String) -> ReplicaID { StorageIdentity(storageID: storageID).replicaID }

    /// Gets a log if needed, then keeps the transport's addresses current and, while this node
    /// leads, the log's members and voters; until cancelled.
    /// `opened` runs once the log is open and before it starts (nothing new is applied yet).
    func run(
        membership: MembershipService,
        peers: PeerClient,
        opened: @Sendable (DirectoryLog) async -> Void
    ) async {
        if let log = self.log {
            await opened(log)
            await self.started(log, membership: membership, peers: peers)
        }
        while !Task.isCancelled {
            let members = membership.members
            if self.log == nil, let log = self.form(members) {
                await opened(log)
                await self.started(log, membership: membership, peers: peers)
            }
            if let log = self.log {
                self.route(log, members)
                await self.steer(log, members)
                self.warnIfNeverReached(log)
            }
            try? await Task.sleep(for: Self.interval)
        }
    }

    /// Stops the log (after the listeners stopped).
    func stop() {
        self.log?.stop()
    }

    // MARK: - Forming

    private func form(_ members: [MemberState]) -> DirectoryLog? {
        let candidates = members.map { member in
            ClusterFormation.Candidate(
                nodeID: member.id.rawValue,
                storageID: member.metadata.storageID,
                clusterID: member.metadata.clusterID,
                isAlive: member.status == .alive
            )
        }
        let decision = ClusterFormation.decide(
            me: self.configuration.nodeID,
            expect: self.configuration.bootstrapExpect,
            candidates: candidates
        )
        do {
            switch decision {
            case .wait(let reason):
                if self.isNew(reason, \.lastWait) {
                    self.logger.notice("no cluster log yet", metadata: ["raft.waiting": "\(reason)"])
                }
                return nil
            case .found(let founders):
                self.logger.notice(
                    "founding the cluster log",
                    metadata: ["raft.founders": "\(founders.map(\.nodeID))"]
                )
                return try self.open(bootstrapVoters: founders.map { Self.replica($0.storageID) }, joining: nil)
            case .join(let clusterID):
                self.logger.notice("joining the cluster log", metadata: ["cluster.id": "\(clusterID)"])
                return try self.open(bootstrapVoters: nil, joining: clusterID)
            }
        } catch {
            self.logger.error("cannot open the cluster log", metadata: ["error": "\(error.message)"])
            return nil
        }
    }

    private func open(bootstrapVoters: [ReplicaID]?, joining: String?) throws(NodeError) -> DirectoryLog {
        let log = try DirectoryLog(
            stateDirectory: self.configuration.stateDirectory,
            identity: self.identity,
            metrics: self.metrics,
            logger: self.logger,
            bootstrapVoters: bootstrapVoters,
            joining: joining
        )
        self.current.withLock { $0 = log }
        return log
    }

    /// Connects a newly opened log, starts its clock and announces its cluster in gossip.
    private func started(_ log: DirectoryLog, membership: MembershipService, peers: PeerClient) async {
        let transport = RaftTransport(peers: peers, clusterID: log.clusterID, logger: self.logger)
        self.route(log, membership.members, transport: transport)
        log.connect(transport)
        do {
            try await log.start()
        } catch {
            self.logger.error("the cluster log did not start", metadata: ["error": "\(error.message)"])
        }
        await membership.setClusterID(log.clusterID)
    }

    /// A replica that joined with an empty log learns the configuration from the leader; if none
    /// reaches it for a minute (say, the founder lost its disk before it replicated anything,
    /// and every other member joined empty too), nobody can elect: say so once.
    private func warnIfNeverReached(_ log: DirectoryLog) {
        let status = log.status
        let warn = self.steward.withLock { steward -> Bool in
            guard status.voters.isEmpty, status.learners.isEmpty else {
                steward.joinedAt = nil
                return false
            }
            let since = steward.joinedAt ?? .now
            steward.joinedAt = since
            guard ContinuousClock.now - since > .seconds(60) else { return false }
            steward.joinedAt = .now + .seconds(86_400 * 365)  // once
            return true
        }
        if warn {
            self.logger.warning(
                "no leader of the cluster log has reached this node for a minute; if every member joined with an empty log (the founder lost its data before replicating), the cluster must be founded again",
                metadata: ["cluster.id": "\(log.clusterID)"]
            )
        }
    }

    // MARK: - Routing

    /// Points each replica id at its member's peer listener, as gossip last showed it.
    private func route(_ log: DirectoryLog, _ members: [MemberState], transport: RaftTransport? = nil) {
        guard let transport = transport ?? log.connectedTransport else { return }
        for member in members where !member.metadata.storageID.isEmpty {
            let replica = Self.replica(member.metadata.storageID)
            log.name(replica, node: member.id.rawValue)
            guard member.id.rawValue != self.configuration.nodeID else { continue }
            transport.setAddress(member.status == .left ? nil : member.metadata.peerAddress, for: replica)
        }
    }

    // MARK: - Leading

    /// On the leader: one round of the roster, then of the autopilot.
    private func steer(_ log: DirectoryLog, _ members: [MemberState]) async {
        let status = log.status
        guard status.role == .leader, status.failure == nil else {
            // Health timers restart with the next term this node leads: a gap in leading must not
            // count as time a learner was stable or a voter was dead.
            self.steward.withLock { steward in
                steward.autopilot = Autopilot(configuration: steward.autopilot.configuration)
                steward.downSince = [:]
            }
            return
        }
        let ours = members.filter { $0.metadata.clusterID == log.clusterID && !$0.metadata.storageID.isEmpty }
        let nodes = ours.map(Self.rosterNode)
        let recorded = log.read(\.members)
        let configuration = ClusterConfiguration(voters: status.voters, learners: status.learners)
        let plan = Roster.plan(
            nodes: nodes,
            members: recorded,
            configuration: configuration,
            leader: self.identity.replicaID,
            format: log.read(\.format),
            replica: Self.replica
        )
        if !plan.commands.isEmpty {
            do {
                let outcomes = try await log.propose(plan.commands)
                self.logger.info(
                    "cluster members recorded",
                    metadata: ["raft.commands": "\(plan.commands)", "raft.outcomes": "\(outcomes)"]
                )
            } catch {
                self.refused("recording members", error.message)
            }
        }
        // Nodes about to join announce no cluster id yet: they count for the format too.
        let newcomers = members.filter { $0.metadata.clusterID.isEmpty && !$0.metadata.storageID.isEmpty }
        await self.raiseFormatIfAgreed(log, nodes + newcomers.map(Self.rosterNode), recorded)
        // The autopilot observes every round (its timers need it); the roster's change goes first.
        let piloted = self.autopilot(status, ours, recorded)
        guard let change = plan.change ?? piloted, !status.pendingChange else { return }
        do {
            try log.proposeChange(change)
            self.logger.notice("cluster log configuration change proposed", metadata: ["raft.change": "\(change)"])
        } catch {
            self.refused("\(change)", error.message)
        }
    }

    private static func rosterNode(_ member: MemberState) -> Roster.Node {
        Roster.Node(
            id: member.id.rawValue,
            storageID: member.metadata.storageID,
            zone: member.metadata.zone,
            isAlive: member.status == .alive,
            directoryFormat: DirectoryFormat.announced(in: member.metadata.version)
        )
    }

    /// Raises the directory format once every member announces a newer one than the log's.
    private func raiseFormatIfAgreed(
        _ log: DirectoryLog,
        _ nodes: [Roster.Node],
        _ recorded: [String: MemberEntry]
    ) async {
        let current = log.read(\.format)
        guard let target = Roster.formatRaise(nodes: nodes, members: recorded, current: current) else { return }
        do {
            let outcomes = try await log.propose([.raiseFormat(version: target)])
            guard outcomes == [.applied] else {
                self.refused("raising the directory format to \(target)", "\(outcomes)")
                return
            }
            self.logger.notice(
                "directory format raised: every member announces it",
                metadata: ["directory.format": "\(target)", "directory.previous_format": "\(current)"]
            )
        } catch {
            self.refused("raising the directory format to \(target)", error.message)
        }
    }

    /// The autopilot's change for now, from gossip health and the leader's replication progress.
    private func autopilot(
        _ status: DirectoryLog.Status,
        _ ours: [MemberState],
        _ recorded: [String: MemberEntry]
    ) -> ConfigurationChange? {
        let now = ContinuousClock.now - self.origin
        let byReplica = Dictionary(
            ours.map { (Self.replica($0.metadata.storageID).rawValue, $0) },
            uniquingKeysWith: { a, b in a.incarnation > b.incarnation ? a : b }
        )
        let zones = Dictionary(
            recorded.values.map { (Self.replica($0.storageID).rawValue, $0.zone) },
            uniquingKeysWith: { a, _ in a }
        )
        return self.steward.withLock { steward -> ConfigurationChange? in
            var members: [Autopilot.Member] = []
            for (replica, isVoter) in status.voters.map({ ($0, true) }) + status.learners.map({ ($0, false) }) {
                let health: Autopilot.Health
                switch byReplica[replica.rawValue]?.status {
                case .alive:
                    health = .alive
                    steward.downSince[replica.rawValue] = nil
                case .suspect:
                    health = .suspect
                default:
                    let since = steward.downSince[replica.rawValue] ?? now
                    steward.downSince[replica.rawValue] = since
                    health = .dead(since: since)
                }
                members.append(
                    Autopilot.Member(
                        id: replica,
                        zone: byReplica[replica.rawValue]?.metadata.zone ?? zones[replica.rawValue] ?? "",
                        isVoter: isVoter,
                        isWitness: byReplica[replica.rawValue]?.metadata.weight == 0,
                        health: health,
                        matchIndex: status.matchIndex[replica.rawValue] ?? 0
                    )
                )
            }
            let action = steward.autopilot.step(
                members: members,
                leader: self.identity.replicaID,
                commitIndex: status.commitIndex,
                pendingChange: status.pendingChange,
                now: now
            )
            switch action {
            case .promote(let replica): return .promoteLearner(replica)
            case .removeVoter(let replica), .demote(let replica): return .remove(replica)
            case nil: return nil
            }
        }
    }

    /// Logs a refused step once per distinct reason (the next round tries again).
    private func refused(_ what: String, _ reason: String) {
        let text = "\(what): \(reason)"
        if self.isNew(text, \.lastRefusal) {
            self.logger.info("cluster log step not taken; retrying", metadata: ["raft.refused": "\(text)"])
        }
    }

    /// Records `text` as the last one said under `key`; true when it differs (said once per change).
    private func isNew(_ text: String, _ key: WritableKeyPath<Steward, String>) -> Bool {
        self.steward.withLock { steward in
            defer { steward[keyPath: key] = text }
            return steward[keyPath: key] != text
        }
    }
}
