/// The directory: which namespaces exist, who owns each at which epoch, and the members, as of the
/// last applied log index. A value, changed only by `apply`, so every node that applies the same log
/// holds the same directory (the node's shell persists it with the applied index in one transaction).
public struct DirectoryState: Sendable, Equatable {
    /// The newest apply rules this build knows.
    public static let supportedFormat: UInt32 = DirectoryFormat.supported

    public internal(set) var namespaces: [String: NamespaceEntry] = [:]
    public internal(set) var members: [String: MemberEntry] = [:]
    /// The format the log has raised the rules to (only ever up).
    public internal(set) var format: UInt32 = 1
    public internal(set) var appliedIndex: UInt64 = 0
    /// Set when a batch needed rules this build does not know: nothing more is applied (diverging
    /// silently would be worse), and the node says so until it is upgraded.
    public internal(set) var haltedAt: (index: UInt64, format: UInt32)?

    public init() {}

    /// A directory loaded back from storage (the shell persists every field after each batch).
    public init(
        namespaces: [String: NamespaceEntry],
        members: [String: MemberEntry],
        format: UInt32,
        appliedIndex: UInt64,
        haltedAt: (index: UInt64, format: UInt32)?
    ) {
        self.namespaces = namespaces
        self.members = members
        self.format = format
        self.appliedIndex = appliedIndex
        self.haltedAt = haltedAt
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.namespaces == rhs.namespaces && lhs.members == rhs.members && lhs.format == rhs.format
            && lhs.appliedIndex == rhs.appliedIndex && lhs.haltedAt?.index == rhs.haltedAt?.index
            && lhs.haltedAt?.format == rhs.haltedAt?.format
    }

    public func owner(of name: String) -> (owner: String, epoch: UInt64)? {
        guard let entry = self.namespaces[name], entry.state == .active else { return nil }
        return (entry.owner, entry.epoch)
    }

    /// The id under which an identity (node id, storage id) that was removed, and whose node id came
    /// back with a new data directory, stays recorded as a removed member (node ids cannot contain
    /// `/`, so it never names a node).
    public static func retiredKey(_ id: String, _ storageID: String) -> String { "\(id)/\(storageID)" }

    /// Active members sorted by id (the candidates for placement).
    public var activeMembers: [MemberEntry] {
        self.members.values.filter { $0.state == .active }.sorted { $0.id < $1.id }
    }

    /// `^[a-z0-9][a-z0-9_-]{0,62}$`, the names the node accepts (checked again here: the log decides).
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 63 else { return false }
        func lowerOrDigit(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        return lowerOrDigit(first) && bytes.dropFirst().allSatisfy { lowerOrDigit($0) || $0 == 0x5f || $0 == 0x2d }
    }

    /// Applies the batch of log entry `index` (entries arrive in order, each once; an index at or
    /// below the applied one is ignored, so a replay after a crash is harmless). Returns one outcome
    /// per command, or nil when the batch was not applied (already applied, or halted).
    public mutating func apply(_ batch: DirectoryBatch, at index: UInt64) -> [DirectoryOutcome]? {
        guard self.haltedAt == nil, index > self.appliedIndex else { return nil }
        guard batch.format <= Self.supportedFormat else {
            self.haltedAt = (index, batch.format)
            return nil
        }
        let outcomes = batch.commands.map { self.apply($0) }
        self.appliedIndex = index
        return outcomes
    }

    /// Whether `snapshot` (a directory received whole, at log index `index`) needs rules this build
    /// does not know: then this directory stays as it is and halts there, as at a batch of that
    /// format, and the snapshot must not be taken.
    public mutating func halts(before snapshot: DirectoryState, at index: UInt64) -> Bool {
        guard snapshot.format > Self.supportedFormat else { return false }
        if self.haltedAt == nil { self.haltedAt = (index, snapshot.format) }
        return true
    }

    /// Advances the applied index over a log entry that carries no directory batch (a no-op, a
    /// configuration change).
    public mutating func skip(to index: UInt64) {
        guard self.haltedAt == nil, index > self.appliedIndex else { return }
        self.appliedIndex = index
    }
}
