/// One namespace as the directory records it: who owns it at which epoch, who keeps copies of it,
/// and its metadata.
/// Times are milliseconds since the Unix epoch (they come from the proposing node and are data here,
/// never read from a clock while applying).
public struct NamespaceEntry: Sendable, Equatable {
    public enum State: UInt8, Sendable, Equatable {
        /// Registered; its owner creates the files on first use.
        case active = 1
        /// Being archived by its owner: refused to requests and to a new create until it is gone.
        case archiving = 2
    }

    public enum Origin: UInt8, Sendable, Equatable {
        case explicit = 1
        case auto = 2
    }

    public var name: String
    public var state: State
    public var owner: String
    /// Raised by every move: a node serves the namespace only for the epoch that names it owner.
    public var epoch: UInt64
    public var origin: Origin
    public var locked: Bool
    public var ttlMilliseconds: UInt64?
    public var createdAt: UInt64
    /// The members that keep a copy besides the owner, best first (format 3). They hold the owner's
    /// files byte for byte, shipped from its WAL, and never run SQLite on them.
    public var followers: [String]
    /// The followers in sync: those holding every acknowledged write. The in-sync set (ISR) is the
    /// owner plus these, always a subset of `followers`.
    public var inSync: [String]
    /// Raised by every change of `followers` or `inSync`: with the epoch, the compare-and-set key of
    /// those changes, so a proposal made from an older replica set is refused.
    public var isrVersion: UInt64

    public init(
        name: String,
        state: State = .active,
        owner: String,
        epoch: UInt64 = 1,
        origin: Origin,
        locked: Bool,
        ttlMilliseconds: UInt64? = nil,
        createdAt: UInt64,
        followers: [String] = [],
        inSync: [String] = [],
        isrVersion: UInt64 = 0
    ) {
        self.name = name
        self.state = state
        self.owner = owner
        self.epoch = epoch
        self.origin = origin
        self.locked = locked
        self.ttlMilliseconds = ttlMilliseconds
        self.createdAt = createdAt
        self.followers = followers
        self.inSync = inSync
        self.isrVersion = isrVersion
    }

    /// The in-sync set: the owner, then its in-sync followers.
    public var isr: [String] { [self.owner] + self.inSync }
}
