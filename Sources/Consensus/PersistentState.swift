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

    /// A founding member's first start: an empty log whose base carries the initial configuration.
    public static func bootstrap(_ configuration: ClusterConfiguration) -> PersistentState {
        PersistentState(
            hardState: HardState(),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, configuration: configuration)),
            entries: []
        )
    }

    /// A replica that will join an existing group: it knows no configuration and never campaigns
    /// until the leader's log (or snapshot) tells it that it is a voter.
    public static let joining = PersistentState.bootstrap(.empty)
}
