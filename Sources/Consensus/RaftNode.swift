/// One Raft replica as a pure state machine, modeled on etcd-io/raft: the shell feeds it `tick()`s
/// (its only notion of time), incoming messages (`step`) and requests (`propose`, `proposeChange`,
/// `readIndex`), and drains `ready()` — what to persist, send and apply — calling `advance(_:)`
/// once that is done. No clocks, no I/O, no randomness but the seeded generator: the same inputs
/// give the same outputs, which is what makes the simulation seed-replayable.
///
/// Configuration changes take effect when *appended* (not when applied): the configuration of a
/// replica is that of the last configuration entry in its log. That is the rule Ongaro's
/// single-server proof assumes, it needs no extra state (truncation and snapshots restore the
/// configuration by themselves), and with "a leader changes the configuration only after it
/// committed an entry of its term, and only one change uncommitted at a time" it is safe across
/// leader changes.
public struct RaftNode: Sendable {
    public let settings: RaftConfiguration
    public var id: ReplicaID { self.settings.id }

    public internal(set) var term: UInt64
    public internal(set) var vote: ReplicaID?
    public internal(set) var leader: ReplicaID?
    public internal(set) var role: RaftRole = .follower

    var log: RaftLog
    /// The latest snapshot (what a lagging follower is sent).
    var snapshot: Snapshot
    /// A snapshot received from the leader, not yet handed out in a `Ready` and persisted.
    var unstableSnapshot: Snapshot?

    /// Leader only: one entry per member of the configuration, sorted by id.
    var progress: [Progress] = []
    /// Candidate and pre-candidate: the answers so far.
    var votes: [(id: ReplicaID, granted: Bool)] = []

    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var random: SplitMix64

    /// ReadIndex bookkeeping (leader only), see `RaftNode+ReadIndex.swift`.
    var readSequence: UInt64 = 0
    var pendingReads: [PendingRead] = []
    var readsAwaitingCommit: [UInt64] = []
    /// Leader transfer in progress (see `RaftNode+Transfer.swift`).
    var leadTransferee: ReplicaID?

    var outbox: [RaftMessage] = []
    var readStates: [ReadState] = []
    var persistedHardState: HardState
    var reportedSoftState: SoftState?

    /// Restarts (or first starts) a replica from its durable state.
    public init(settings: RaftConfiguration, restoring state: PersistentState) throws(RaftError) {
        try settings.validate()
        var expected = state.snapshot.metadata.index + 1
        for entry in state.entries {
            guard entry.index == expected else {
                throw RaftError(.invalidConfiguration, "persisted entries are not contiguous at \(entry.index)")
            }
            expected += 1
        }
        guard state.hardState.commit < expected else {
            throw RaftError(.invalidConfiguration, "persisted commit \(state.hardState.commit) is beyond the log")
        }
        self.settings = settings
        self.random = SplitMix64(seed: settings.randomSeed ^ (settings.id.rawValue &* 0x9E37_79B9_7F4A_7C15))
        self.log = RaftLog(base: state.snapshot.metadata, entries: state.entries, committed: state.hardState.commit)
        self.log.toleratesViolations = !settings.mutations.isEmpty
        self.snapshot = state.snapshot
        self.term = state.hardState.term
        self.vote = state.hardState.vote
        self.persistedHardState = state.hardState
        self.becomeFollower(term: state.hardState.term, leader: nil)
    }

    // MARK: - Observers

    public var hardState: HardState { HardState(term: self.term, vote: self.vote, commit: self.log.committed) }
    public var softState: SoftState { SoftState(role: self.role, leader: self.leader) }
    public var commitIndex: UInt64 { self.log.committed }
    public var appliedIndex: UInt64 { self.log.applied }
    public var firstIndex: UInt64 { self.log.firstIndex }
    public var lastIndex: UInt64 { self.log.lastIndex }
    public func term(at index: UInt64) -> UInt64? { self.log.term(at: index) }
    public func entries(from: UInt64, through: UInt64) -> [LogEntry] { self.log.slice(from: from, through: through) }
    /// The configuration in force (that of the last configuration entry in the log).
    public var configuration: ClusterConfiguration { self.log.configuration }
    /// The leader's view of each member (empty unless leader).
    public var replicationProgress: [Progress] { self.progress }
    /// A configuration change is appended and not yet committed (no other may be proposed).
    public var hasPendingConfigurationChange: Bool { self.log.lastConfigurationIndex > self.log.committed }
    /// Voters of the current configuration campaign; learners and removed replicas never do.
    public var isPromotable: Bool { self.configuration.isVoter(self.id) }

    // MARK: - Ticks

    /// Advances logical time by one tick: elections for followers, heartbeats and the
    /// check-quorum round for leaders.
    public mutating func tick() {
        self.electionElapsed += 1
        guard self.role == .leader else {
            if self.isPromotable && self.electionElapsed >= self.randomizedElectionTimeout {
                self.electionElapsed = 0
                self.campaign(self.settings.preVote ? .preElection : .election)
            }
            return
        }
        self.heartbeatElapsed += 1
        self.tickSnapshots()
        if self.electionElapsed >= self.settings.electionTicks {
            self.electionElapsed = 0
            self.leadTransferee = nil
            if self.settings.checkQuorum && !self.checkQuorumActive() {
                self.becomeFollower(term: self.term, leader: nil)
                return
            }
        }
        if self.heartbeatElapsed >= self.settings.heartbeatTicks {
            self.heartbeatElapsed = 0
            self.broadcastHeartbeat()
        }
    }

    // MARK: - Ready / advance

    /// Whether `ready()` has anything for the shell.
    public var hasReady: Bool {
        self.softState != self.reportedSoftState || self.hardState != self.persistedHardState
            || self.log.stableIndex < self.log.lastIndex || self.unstableSnapshot != nil
            || (self.unstableSnapshot == nil && self.log.hasEntriesToApply) || !self.outbox.isEmpty
            || !self.readStates.isEmpty
    }

    /// Takes the pending work. Messages and read states are handed out once; the rest is handed
    /// out again until `advance(_:)` acknowledges it.
    public mutating func ready() -> Ready {
        var ready = Ready()
        if self.softState != self.reportedSoftState {
            ready.softState = self.softState
            self.reportedSoftState = self.softState
        }
        if self.hardState != self.persistedHardState { ready.hardState = self.hardState }
        ready.snapshot = self.unstableSnapshot
        ready.entries = self.log.unstableEntries
        if self.unstableSnapshot == nil { ready.committedEntries = self.log.entriesToApply }
        ready.messages = self.outbox
        ready.readStates = self.readStates
        self.outbox = []
        self.readStates = []
        return ready
    }

    /// The shell persisted, sent and applied `ready`.
    public mutating func advance(_ ready: Ready) {
        if let hardState = ready.hardState { self.persistedHardState = hardState }
        if self.role == .candidate && self.persistedHardState.term == self.term
            && self.persistedHardState.vote == self.id
        {
            self.handleVoteResponse(from: self.id, granted: true)  // our own vote is durable now
        }
        if let snapshot = ready.snapshot, snapshot == self.unstableSnapshot {
            self.unstableSnapshot = nil
            self.snapshot = snapshot
            self.log.applied(through: snapshot.metadata.index)
        }
        if let last = ready.entries.last, self.log.matchTerm(last.index, last.term) {
            self.log.stableIndex = max(self.log.stableIndex, last.index)
        }
        if let last = ready.committedEntries.last { self.log.applied(through: last.index) }
        if self.role == .leader && !ready.entries.isEmpty {
            // The leader's own acknowledgement counts only once its entries are durable.
            self.acknowledge(from: self.id, through: self.log.stableIndex)
        }
    }

    // MARK: - Role transitions

    mutating func becomeFollower(term: UInt64, leader: ReplicaID?) {
        if term != self.term {
            self.term = term
            self.vote = nil
        }
        self.role = .follower
        self.leader = leader
        self.resetTimers()
        self.progress = []
        self.votes = []
        self.pendingReads = []
        self.readsAwaitingCommit = []
        self.leadTransferee = nil
    }

    mutating func resetTimers() {
        self.electionElapsed = 0
        self.heartbeatElapsed = 0
        let base = self.settings.electionTicks
        self.randomizedElectionTimeout = base + Int(self.random.below(UInt64(base)))
    }

    mutating func send(to: ReplicaID, term: UInt64? = nil, _ kind: RaftMessage.Kind) {
        self.outbox.append(RaftMessage(from: self.id, to: to, term: term ?? self.term, kind: kind))
    }

    // MARK: - Step

    /// Handles one message from another replica.
    public mutating func step(_ message: RaftMessage) {
        guard message.to == self.id, message.from != self.id else { return }
        if message.term > self.term {
            switch message.kind {
            case .preVote, .vote(_, _, transfer: false):
                // Leader lease: a replica that heard from a leader within the election timeout
                // does not help depose it.
                if self.settings.checkQuorum && self.leader != nil
                    && self.electionElapsed < self.settings.electionTicks
                {
                    return
                }
            default:
                break
            }
            switch message.kind {
            case .preVote:
                break  // a pre-vote never changes our term
            case .preVoteResponse(granted: true):
                break  // the term is taken when the real campaign starts
            case .append, .heartbeat, .snapshot:
                self.becomeFollower(term: message.term, leader: message.from)
            default:
                self.becomeFollower(term: message.term, leader: nil)
            }
        } else if message.term < self.term {
            switch message.kind {
            case .append, .heartbeat:
                // A deposed leader (maybe back from a partition): tell it our term so it steps down.
                if self.settings.checkQuorum || self.settings.preVote {
                    self.send(to: message.from, .appendAccepted(index: 0))
                }
            case .preVote:
                self.send(to: message.from, .preVoteResponse(granted: false))
            default:
                break
            }
            return
        }

        switch message.kind {
        case .preVote(let lastIndex, let lastTerm):
            self.handleVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, preVote: true)
        case .vote(let lastIndex, let lastTerm, _):
            self.handleVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, preVote: false)
        case .preVoteResponse(let granted):
            if self.role == .preCandidate { self.handleVoteResponse(from: message.from, granted: granted) }
        case .voteResponse(let granted):
            if self.role == .candidate { self.handleVoteResponse(from: message.from, granted: granted) }
        case .append, .heartbeat, .snapshot:
            if self.role == .leader { return }  // same term, another leader: impossible
            if self.role != .follower { self.becomeFollower(term: self.term, leader: message.from) }
            self.leader = message.from
            self.electionElapsed = 0
            switch message.kind {
            case .append(let prevIndex, let prevTerm, let entries, let commit):
                self.handleAppend(from: message.from, prevIndex: prevIndex, prevTerm: prevTerm, entries, commit: commit)
            case .heartbeat(let commit, let readSequence):
                self.log.commit(to: commit)
                self.send(to: message.from, .heartbeatResponse(readSequence: readSequence))
            case .snapshot(let snapshot):
                self.handleSnapshot(from: message.from, snapshot)
            default:
                break
            }
        case .appendAccepted(let index):
            if self.role == .leader { self.handleAppendAccepted(from: message.from, index: index) }
        case .appendRejected(let rejected, let hintIndex, let hintTerm):
            if self.role == .leader {
                self.handleAppendRejected(
                    from: message.from,
                    rejected: rejected,
                    hintIndex: hintIndex,
                    hintTerm: hintTerm
                )
            }
        case .heartbeatResponse(let readSequence):
            if self.role == .leader { self.handleHeartbeatResponse(from: message.from, readSequence: readSequence) }
        case .timeoutNow:
            if self.role == .follower && self.isPromotable { self.campaign(.transfer) }
        }
    }
}
