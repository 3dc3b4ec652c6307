/// The role of a replica.
public enum RaftRole: Sendable, Equatable {
    case follower
    case preCandidate
    case candidate
    case leader
}

/// Volatile state worth telling the shell about when it changes (who leads, in which role we are).
public struct SoftState: Sendable, Equatable {
    public var role: RaftRole
    public var leader: ReplicaID?

    public init(role: RaftRole, leader: ReplicaID?) {
        self.role = role
        self.leader = leader
    }
}

/// A ReadIndex answer: once the application has applied through `index`, a read for `context`
/// observes every write that completed before the read was requested.
public struct ReadState: Sendable, Equatable {
    public var context: UInt64
    public var index: UInt64

    public init(context: UInt64, index: UInt64) {
        self.context = context
        self.index = index
    }
}

/// Work for the shell, in this order: persist `snapshot`, `entries` and `hardState` (one atomic,
/// synced write); then send `messages` (never before: a vote or an acknowledgement must survive a
/// crash); apply `committedEntries` (or restore from `snapshot`); answer `readStates`; finally call
/// `RaftNode.advance(_:)` with this value before asking for the next `Ready`.
public struct Ready: Sendable, Equatable {
    /// Set when the role or the known leader changed.
    public var softState: SoftState?
    /// Set when the term, vote or commit index changed.
    public var hardState: HardState?
    /// Entries to persist: they replace every persisted entry at `entries[0].index` and above.
    public var entries: [LogEntry] = []
    /// A snapshot received from the leader: persist it, discard all persisted entries, and restore
    /// the application from its data.
    public var snapshot: Snapshot?
    /// Entries committed and persisted locally, to apply in order.
    public var committedEntries: [LogEntry] = []
    public var messages: [RaftMessage] = []
    public var readStates: [ReadState] = []

    public init() {}

    public var isEmpty: Bool {
        self.softState == nil && self.hardState == nil && self.entries.isEmpty && self.snapshot == nil
            && self.committedEntries.isEmpty && self.messages.isEmpty && self.readStates.isEmpty
    }
}
