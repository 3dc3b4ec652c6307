/// The failure detector and member list of one node: SWIM with Lifeguard. Pure: no sockets, no clocks,
/// no tasks. Inputs carry `now`; outputs are actions for the shell (send this, a member changed).
/// Random choices come from a seeded generator and every iteration over members is in a fixed order,
/// so a simulation replays exactly from its seed.
///
/// Protocol summary (see the README's membership section for the full rules):
/// - every probe interval (scaled by the local health multiplier) the next member in a shuffled
///   round-robin order is pinged; without an ack within the probe timeout, k others are asked to ping
///   it (they answer with an indirect ack, or a nack when they could not reach it either); without
///   any ack by the end of the interval it becomes *suspect*;
/// - a suspect that does not refute (by raising its incarnation) within the Lifeguard suspicion
///   timeout — long for a lone accuser, shrinking with independent confirmations — is declared *dead*;
/// - state changes are piggybacked on every message and fanned out every gossip interval, each about
///   λ·log N times; a periodic push-pull sync and retries towards dead members heal partitions;
/// - a node whose own ticks ran late (it was stalled) convicts nobody until it has probed again.
public struct MembershipStateMachine: Sendable {
    public enum Action: Hashable, Sendable {
        case send(MembershipEnvelope, to: MembershipDestination)
        /// A member appeared or its status, incarnation or metadata changed.
        case memberChanged(MemberState, previous: MemberStatus?)
        /// Another live process claims this node's id (reported once per process).
        case conflictingIdentity(MemberState)
    }

    struct Record: Sendable {
        var state: MemberState
        var since: Instant
        var suspicion: Suspicion?
    }

    struct Suspicion: Sendable {
        var started: Instant
        var accusers: Set<NodeID>
        var deadline: Instant
    }

    struct Probe: Sendable {
        var target: NodeID
        var sequence: UInt64
        var directDeadline: Instant
        var endsAt: Instant
        var indirect = false
        var expectedNacks = 0
        var nacks = 0
    }

    struct Relay: Sendable {
        var origin: NodeID
        var originAddress: String
        var originSequence: UInt64
        var deadline: Instant
    }

    public let configuration: MembershipConfiguration
    /// This node's own state.
    public internal(set) var me: MemberState
    var records: [NodeID: Record] = [:]
    /// Alive and suspect members other than this node, sorted: probe and fan-out candidates.
    var targets: [NodeID] = []
    var suspects: Set<NodeID> = []
    var departed: Set<NodeID> = []
    var random: SplitMix64
    var probeOrder: [NodeID] = []
    var probeIndex = 0
    var probe: Probe?
    var relays: [UInt64: Relay] = [:]
    var sequence: UInt64 = 0
    /// Lifeguard's local health multiplier: 0 (healthy) … `maxLocalHealth`.
    public internal(set) var localHealth = 0
    var nextProbeAt: Instant
    var nextGossipAt: Instant
    var nextSyncAt: Instant
    var nextDeadRetryAt: Instant
    var nextJoinAt: Instant
    var lastTick: Instant?
    var convictionsAllowedAt: Instant = .zero
    var broadcasts = Dissemination()
    private(set) var seeds: [String]
    var reportedConflicts: Set<UInt64> = []
    /// True once a full state exchange completed; until then the node keeps asking (seeds first).
    public internal(set) var synced = false

    /// - Parameters:
    ///   - metadata: this node's metadata (its `instance` should be random per process).
    ///   - incarnation: the starting incarnation; a restarted process MUST start above every
    ///     incarnation of its previous life (the shell uses wall-clock milliseconds).
    ///   - seeds: gossip addresses to join through (may include this node's own address).
    ///   - randomSeed: seeds every random choice.
    public init(
        metadata: MemberMetadata,
        incarnation: Incarnation,
        seeds: [String],
        configuration: MembershipConfiguration,
        randomSeed: UInt64,
        now: Instant
    ) {
        self.configuration = configuration
        self.me = MemberState(metadata: metadata, status: .alive, incarnation: incarnation)
        self.seeds = seeds.filter { $0 != metadata.gossipAddress }
        self.random = SplitMix64(seed: randomSeed)
        let jitter = { (range: Duration, random: inout SplitMix64) -> Duration in
            range * Double(random.next() % 1000) / 1000
        }
        var random = self.random
        self.nextProbeAt = now + jitter(configuration.probeInterval, &random)
        self.nextGossipAt = now + jitter(configuration.gossipInterval, &random)
        self.nextSyncAt = now + configuration.syncInterval + jitter(configuration.syncInterval, &random)
        self.nextDeadRetryAt = now + configuration.deadRetryInterval + jitter(configuration.deadRetryInterval, &random)
        self.nextJoinAt = now
        self.random = random
        self.broadcasts.enqueue(self.me)
    }

    // MARK: queries

    public var id: NodeID { self.me.id }

    /// Every member this node knows, itself included, sorted by id.
    public var members: [MemberState] {
        ([self.me] + self.records.values.map(\.state)).sorted { $0.id < $1.id }
    }

    public func state(of id: NodeID) -> MemberState? {
        id == self.me.id ? self.me : self.records[id]?.state
    }

    /// Members believed alive or suspect (the placement set), itself included.
    public var liveCount: Int { self.targets.count + (self.me.status == .alive ? 1 : 0) }

    /// The cluster size used for timeouts and retransmission limits.
    var clusterSize: Int { self.targets.count + 1 }

    /// True once any other member is known alive.
    public var hasJoined: Bool { !self.targets.isEmpty }

    /// True when there are seed addresses other than this node's own.
    public var hasSeeds: Bool { !self.seeds.isEmpty }

    /// Replaces the seed addresses (the shell re-resolves DNS names that stand for several members).
    public mutating func replaceSeeds(_ seeds: [String]) {
        self.seeds = seeds.filter { $0 != self.me.metadata.gossipAddress }
    }

    /// A deterministic digest of this node's view, for comparing views across nodes.
    public var view: [MemberDigest] { self.members.map(\.digest) }

    // MARK: helpers shared by the input handlers

    func scaled(_ duration: Duration) -> Duration { duration * (1 + self.localHealth) }

    mutating func nextSequence() -> UInt64 {
        self.sequence &+= 1
        return self.sequence
    }

    /// An envelope for `receiver` with piggybacked updates; when this node doubts the receiver, its
    /// doubt goes first so the receiver can refute at once (Lifeguard's buddy system).
    mutating func envelope(_ message: MembershipMessage, to receiver: NodeID?) -> MembershipEnvelope {
        var updates: [MemberState] = []
        if let receiver, let record = self.records[receiver], record.state.status != .alive {
            updates.append(record.state)
        }
        updates += self.broadcasts.take(
            max: self.configuration.maxPiggyback - updates.count,
            limit: self.configuration.retransmitLimit(members: self.clusterSize)
        )
        return MembershipEnvelope(sender: self.me, message: message, updates: updates)
    }

    mutating func send(_ message: MembershipMessage, to id: NodeID, _ actions: inout [Action]) {
        guard let address = self.records[id]?.state.metadata.gossipAddress else { return }
        actions.append(.send(self.envelope(message, to: id), to: .member(id, address: address)))
    }

    /// Up to `count` distinct random members from `candidates`.
    mutating func sample(_ candidates: [NodeID], count: Int) -> [NodeID] {
        guard count > 0, !candidates.isEmpty else { return [] }
        if candidates.count <= count { return candidates }
        var chosen: [NodeID] = []
        var picked = Set<Int>()
        while chosen.count < count {
            let index = Int(self.random.next() % UInt64(candidates.count))
            if picked.insert(index).inserted { chosen.append(candidates[index]) }
        }
        return chosen
    }
}

extension MembershipStateMachine {
    /// Drops pending piggyback updates (test support: a simulated cluster that starts converged).
    public mutating func forgetPendingUpdates() {
        self.broadcasts = Dissemination()
    }
}
