/// The state a replica must have on stable storage before it sends the messages of a `Ready`:
/// its term, its vote in that term, and how far it knows the log to be committed.
public struct HardState: Sendable, Equatable {
    public var term: UInt64
    public var vote: ReplicaID?
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: ReplicaID? = nil, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// What a snapshot replaces: the log up to and including `index` (whose term was `term`), and the
/// configuration in force at that index.
public struct SnapshotMetadata: Sendable, Equatable {
    public var index: UInt64
    public var term: UInt64
    public var configuration: ClusterConfiguration

    public init(index: UInt64, term: UInt64, configuration: ClusterConfiguration) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }
}

/// A snapshot of the application state (opaque bytes) at `metadata.index`.
public struct Snapshot: Sendable, Equatable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata, data: [UInt8] = []) {
        self.metadata = metadata
        self.data = data
    }
}

/// Everything a replica restarts from: the durable hard state, the latest snapshot and the
/// persisted entries that follow it (contiguous from `snapshot.metadata.index + 1`).
public struct PersistentState: Sendable, Equatable {
    public var hardState: HardState
    public var snapshot: Snapshot
    public var entries: [LogEntry]

    public init(hardState: HardState, snapshot: Snapshot, entries: [LogEntry]) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    /// A founding member's first start (what the shell persists before the first `RaftNode`). Like
    /// etcd's `Bootstrap`, the initial configuration is written as log entries, not only into the
    /// snapshot base: one single-server change per member (voters first, then learners, sorted) at
    /// term 1 from index 1, all committed. Every founder writes the same entries, so they match the
    /// leader's; a replica that joins with an empty log receives them like any other entry, and
    /// every configuration (including that of a snapshot it takes at any index >= 1) is then a
    /// function of the log. With the configuration only in the base at index 0, a joiner knew no
    /// configuration before the first change entry and its snapshots there carried `voters()`.
    public static func bootstrap(_ configuration: ClusterConfiguration) -> PersistentState {
        precondition(!configuration.voters.isEmpty, "a group is founded by at least one voter (else use .joining)")
        var entries: [LogEntry] = []
        var grown = ClusterConfiguration.empty
        func append(_ change: ConfigurationChange) {
            grown = try! grown.applying(change)  // distinct members: every step is valid
            entries.append(LogEntry(term: 1, index: UInt64(entries.count + 1), payload: .configuration(change, grown)))
        }
        configuration.voters.forEach { append(.addVoter($0)) }
        configuration.learners.forEach { append(.addLearner($0)) }
        return PersistentState(
            hardState: HardState(term: 1, vote: nil, commit: UInt64(entries.count)),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, configuration: .empty)),
            entries: entries
        )
    }

    /// A replica that will join an existing group: an empty log, so it knows no configuration and
    /// never campaigns until the leader's log (or snapshot) tells it that it is a voter.
    public static let joining = PersistentState(
        hardState: HardState(),
        snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, configuration: .empty)),
        entries: []
    )
}
