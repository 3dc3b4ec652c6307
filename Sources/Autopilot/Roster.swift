import Consensus
import Directory

/// Who is in the cluster log: the Raft leader keeps the directory's members and the log's
/// configuration in line with the nodes gossip shows in this cluster. Pure: the shell passes what
/// it sees and proposes the plan (the commands in one entry, the configuration change on its own).
///
/// Rules:
/// - a live node of this cluster that the directory does not know is registered (join, activate);
///   one that comes back with another storage id (a wiped disk, a replaced machine) first has its
///   old record removed, and its old replica is taken out of the configuration before the new one
///   is registered, so the old self never votes again and the new one starts as a stranger;
/// - a registered node whose replica is not in the configuration is added as a learner (the
///   `Autopilot` decides on voters);
/// - an identity once removed is never registered again, even if it comes back;
/// - one configuration change at a time: removals before additions; never the leader's removal;
/// - the directory format is raised once every member it counts announces the new one
///   (`formatRaise`).
public enum Roster {
    /// A node gossip shows as a member of this cluster.
    public struct Node: Sendable, Equatable {
        public var id: String
        public var storageID: String
        public var zone: String
        public var isAlive: Bool
        /// The newest directory format it announces (`DirectoryFormat.announced`).
        public var directoryFormat: UInt32

        public init(
            id: String,
            storageID: String,
            zone: String,
            isAlive: Bool,
            directoryFormat: UInt32 = DirectoryFormat.baseline
        ) {
            self.id = id
            self.storageID = storageID
            self.zone = zone
            self.isAlive = isAlive
            self.directoryFormat = directoryFormat
        }
    }

    public struct Plan: Sendable, Equatable {
        /// Directory commands, proposed together as one entry.
        public var commands: [DirectoryCommand] = []
        /// At most one configuration change.
        public var change: ConfigurationChange?

        public init(commands: [DirectoryCommand] = [], change: ConfigurationChange? = nil) {
            self.commands = commands
            self.change = change
        }

        public var isEmpty: Bool { self.commands.isEmpty && self.change == nil }
    }

    /// The plan for now. `replica` maps a storage id to its replica id (the shell's derivation);
    /// `leader` is never removed (another leader will, once it steps down). A node announcing a
    /// directory format below `format` (the log's) is left out: it would stop applying, and as a
    /// voter it could lead a log it cannot apply.
    public static func plan(
        nodes: [Node],
        members: [String: MemberEntry],
        configuration: ClusterConfiguration,
        leader: ReplicaID,
        format: UInt32 = 0,
        replica: (String) -> ReplicaID
    ) -> Plan {
        var plan = Plan()
        var removals: [ReplicaID] = []
        var additions: [ReplicaID] = []
        // Removed storage ids still in the configuration go first, whatever gossip shows.
        for member in members.values where member.state == .removed {
            let old = replica(member.storageID)
            if configuration.contains(old) && old != leader { removals.append(old) }
        }
        for node in nodes.sorted(by: { $0.id < $1.id })
        where node.isAlive && !node.storageID.isEmpty && node.directoryFormat >= format {
            // An identity removed before is never trusted again (an old disk that came back).
            if members[DirectoryState.retiredKey(node.id, node.storageID)] != nil { continue }
            let current = replica(node.storageID)
            guard let member = members[node.id] else {
                plan.commands += Self.register(node)
                continue
            }
            if member.storageID != node.storageID {
                if member.state != .removed {
                    plan.commands.append(.removeMember(id: node.id))
                } else if !configuration.contains(replica(member.storageID)) {
                    plan.commands += Self.register(node)
                }
                continue
            }
            switch member.state {
            case .removed:
                continue  // this storage id is never trusted again
            case .joining, .left:
                plan.commands += Self.register(node)
            case .active, .leaving:
                break
            }
            if !configuration.contains(current) { additions.append(current) }
        }
        if let removal = removals.min() {
            plan.change = .remove(removal)
        } else if let addition = additions.min() {
            plan.change = .addLearner(addition)
        }
        return plan
    }

    /// The format to raise the directory to now, if any: the lowest one announced by the members
    /// the directory still counts (joining, active, leaving) and by the live nodes about to join,
    /// when that is above `current`. Every counted member must be seen in gossip (alive or not:
    /// what it last announced is what its build knows) under the storage id it was recorded with;
    /// one not seen cannot be vouched for, and nothing is raised. Never above what this build
    /// (`supported`) knows, and never before the directory counts a member.
    public static func formatRaise(
        nodes: [Node],
        members: [String: MemberEntry],
        current: UInt32,
        supported: UInt32 = DirectoryFormat.supported
    ) -> UInt32? {
        let counted = members.values.filter { [.joining, .active, .leaving].contains($0.state) }
        guard !counted.isEmpty else { return nil }
        var lowest = supported
        for member in counted {
            guard let node = nodes.first(where: { $0.id == member.id && $0.storageID == member.storageID }) else {
                return nil
            }
            lowest = min(lowest, node.directoryFormat)
        }
        for node in nodes where node.isAlive { lowest = min(lowest, node.directoryFormat) }
        return lowest > current ? lowest : nil
    }

    private static func register(_ node: Node) -> [DirectoryCommand] {
        [
            .joinMember(id: node.id, storageID: node.storageID, zone: node.zone),
            .activateMember(id: node.id, storageID: node.storageID),
        ]
    }
}
