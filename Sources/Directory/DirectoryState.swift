/// The directory: which namespaces exist, who owns each at which epoch, and the members, as of the
/// last applied log index. A value, changed only by `apply`, so every node that applies the same log
/// holds the same directory (the node's shell persists it with the applied index in one transaction).
///
/// The namespace rows need not all be in memory: a node keeps them on disk and `load`s the rows a
/// batch names before applying it (`DirectoryBatch.namespaceNames`); the rules read no other row.
/// Members, the format and the number of namespaces each member owns are always whole.
public struct DirectoryState: Sendable, Equatable {
    /// The newest apply rules this build knows.
    public static let supportedFormat: UInt32 = DirectoryFormat.supported

    /// The namespace rows in memory: all of them in a directory kept whole, the rows loaded for the
    /// next batch in one whose shell keeps them on disk.
    public internal(set) var namespaces: [String: NamespaceEntry] = [:]
    public internal(set) var members: [String: MemberEntry] = [:]
    /// Namespaces by owner, in any state, loaded or not (a member that owns any cannot leave).
    public internal(set) var ownedCounts: [String: Int] = [:]
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
        self.init(
            members: members,
            ownedCounts: namespaces.values.reduce(into: [:]) { $0[$1.owner, default: 0] += 1 },
            format: format,
            appliedIndex: appliedIndex,
            haltedAt: haltedAt
        )
        self.namespaces = namespaces
    }

    /// A directory loaded back from storage without its namespace rows (they stay on disk).
    public init(
        members: [String: MemberEntry],
        ownedCounts: [String: Int],
        format: UInt32,
        appliedIndex: UInt64,
        haltedAt: (index: UInt64, format: UInt32)?
    ) {
        self.members = members
        self.ownedCounts = ownedCounts
        self.format = format
        self.appliedIndex = appliedIndex
        self.haltedAt = haltedAt
    }

    /// How many namespaces exist, in any state.
    public var namespaceCount: Int { self.ownedCounts.values.reduce(0, +) }

    /// Puts rows read back from storage in memory (the rows a batch names, before applying it).
    /// A row already in memory is newer than storage and stays.
    public mutating func load(_ entries: some Sequence<NamespaceEntry>) {
        for entry in entries where self.namespaces[entry.name] == nil { self.namespaces[entry.name] = entry }
    }

    /// Drops the namespace rows from memory (after they were persisted); the counts stay.
    public mutating func unload() { self.namespaces = [:] }

    /// This directory without its namespace rows: what a shell that keeps them on disk holds.
    public var unloaded: DirectoryState {
        var copy = self
        copy.unload()
        return copy
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.namespaces == rhs.namespaces && lhs.members == rhs.members && lhs.ownedCounts == rhs.ownedCounts
            && lhs.format == rhs.format
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
