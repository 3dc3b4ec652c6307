/// One change of the directory. Commands are proposed by nodes (the Raft leader places new
/// namespaces), travel in the replicated log in batches (`DirectoryBatch`) and are applied in log
/// order by `DirectoryState.apply`, identically on every node; a command that does not fit the
/// state it meets is refused there, never half applied.
public enum DirectoryCommand: Sendable, Equatable {
    /// Registers a namespace owned by an active member (epoch 1). Refused when the name exists in any state.
    /// `followers` (format 3) start in sync: a new namespace is empty everywhere. Those that are not
    /// active members other than the owner are left out.
    case createNamespace(
        name: String,
        owner: String,
        origin: NamespaceEntry.Origin,
        locked: Bool,
        ttlMilliseconds: UInt64?,
        createdAt: UInt64,
        followers: [String] = []
    )
    /// The owner at `epoch` starts archiving it.
    case beginArchive(name: String, epoch: UInt64)
    /// The owner at `epoch` archived its files: the name is free again.
    case finishArchive(name: String, epoch: UInt64)
    /// Compare-and-set: the namespace at `epoch` moves to `owner` (an active member) at `epoch + 1`.
    case moveNamespace(name: String, epoch: UInt64, owner: String)
    case setLocked(name: String, locked: Bool)
    case setTTL(name: String, ttlMilliseconds: UInt64?)
    /// A node registers (joining) with its storage id; again with the same one is a no-op.
    case joinMember(id: String, storageID: String, zone: String)
    /// The member (with that storage id) finished catching up.
    case activateMember(id: String, storageID: String)
    case leaveMember(id: String, storageID: String)
    case leftMember(id: String, storageID: String)
    /// Takes a member out for good (an operator, or a wiped disk detected).
    case removeMember(id: String)
    /// Compare-and-set on (epoch, ISR version): the namespace's followers become `followers` (active
    /// members, not the owner, no repeats); one that stays keeps its in-sync state, a new one starts
    /// out of sync. Format 3.
    case setFollowers(name: String, epoch: UInt64, isrVersion: UInt64, followers: [String])
    /// Compare-and-set on (epoch, ISR version): the in-sync followers become `inSync` (followers all).
    /// Format 3.
    case setInSync(name: String, epoch: UInt64, isrVersion: UInt64, inSync: [String])
    /// Raises the apply rules' format once every member supports it.
    case raiseFormat(version: UInt32)
    /// `command` (one about a namespace), applied only to the namespace created at `createdAt`:
    /// what a node proposes from what it last saw of a namespace (a move, an archive) never
    /// applies to a later namespace of the same name (archived, then created again). Format 2.
    indirect case guarded(createdAt: UInt64, DirectoryCommand)

    /// The apply rules a batch carrying this command needs. A raise needs the rules it raises to,
    /// so a node that does not know them stops there instead of applying it differently.
    public var requiredFormat: UInt32 {
        switch self {
        case .guarded: 2
        case .createNamespace(_, _, _, _, _, _, let followers): followers.isEmpty ? 1 : 3
        case .setFollowers, .setInSync: 3
        case .raiseFormat(let version): version
        default: 1
        }
    }
}

extension DirectoryCommand {
    /// The namespace this command may change (what a shell persists after applying it).
    public var namespaceName: String? {
        switch self {
        case .createNamespace(let name, _, _, _, _, _, _), .beginArchive(let name, _), .finishArchive(let name, _),
            .moveNamespace(let name, _, _), .setLocked(let name, _), .setTTL(let name, _),
            .setFollowers(let name, _, _, _), .setInSync(let name, _, _, _):
            name
        case .guarded(_, let command):
            command.namespaceName
        default: nil
        }
    }

    /// The member this command may change.
    public var memberID: String? {
        switch self {
        case .joinMember(let id, _, _), .activateMember(let id, _), .leaveMember(let id, _), .leftMember(let id, _),
            .removeMember(let id):
            id
        default: nil
        }
    }
}

/// The payload of one log entry: commands applied together, in order, under a format version.
public struct DirectoryBatch: Sendable, Equatable {
    /// The apply rules the proposer expected; a node that does not know them stops applying.
    public var format: UInt32
    public var commands: [DirectoryCommand]

    /// `format` defaults to the oldest rules the commands need, so a member that has not been
    /// upgraded yet keeps applying what it understands.
    public init(format: UInt32? = nil, commands: [DirectoryCommand]) {
        self.format = format ?? commands.map(\.requiredFormat).max() ?? 1
        self.commands = commands
    }

    /// The namespace rows applying this batch reads (a shell keeping rows on disk loads them first).
    public var namespaceNames: Set<String> { Set(self.commands.compactMap(\.namespaceName)) }
}

/// What applying a command did.
public enum DirectoryOutcome: Sendable, Equatable {
    case applied
    case refused(DirectoryRefusal)
}

/// Why a command was refused (deterministically, on every node alike).
public enum DirectoryRefusal: Sendable, Equatable {
    case namespaceExists(NamespaceEntry.State)
    case noSuchNamespace
    case epochMismatch(current: UInt64)
    case namespaceNotActive
    case invalidName
    case noSuchMember
    case memberNotActive
    case storageMismatch
    case memberRemoved
    case invalidTransition
    case formatNotRaised(current: UInt32)
    /// The replica set changed since the proposer read it.
    case isrVersionMismatch(current: UInt64)
}
