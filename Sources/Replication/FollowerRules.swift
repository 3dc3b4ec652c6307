import Directory

/// What a follower checks before it touches its copy for a shipment (append, retire or install):
/// the sender must be the owner its applied directory names at the shipment's epoch, and this node
/// one of that owner's followers. A shipment made from a directory this node has not applied yet
/// waits for it; one from an epoch that is over is refused, in the same step as the entry that
/// ended it is applied (the check reads the applied entry, never a cached role).
public enum FollowerRules {
    /// Who sent a shipment, from which role.
    public struct Sender: Sendable, Equatable {
        public var node: String
        public var epoch: UInt64
        /// The namespace's incarnation (its creation time): a name deleted and created again is
        /// another namespace, at epoch 1 again.
        public var createdAt: UInt64
        /// The directory index at which the sender read its role.
        public var directoryIndex: UInt64

        public init(node: String, epoch: UInt64, createdAt: UInt64, directoryIndex: UInt64) {
            self.node = node
            self.epoch = epoch
            self.createdAt = createdAt
            self.directoryIndex = directoryIndex
        }
    }

    public enum Verdict: Sendable, Equatable {
        case accept
        /// This node has applied the directory only up to a lower index: wait, then decide again.
        case waitForDirectory
        case refuse(ReplicationError)
    }

    public static func admit(
        _ sender: Sender,
        selfID: String,
        appliedIndex: UInt64,
        entry: NamespaceEntry?
    ) -> Verdict {
        guard appliedIndex >= sender.directoryIndex else { return .waitForDirectory }
        guard let entry, entry.state == .active else {
            return .refuse(ReplicationError(.staleSender, "the namespace is not active in this node's directory"))
        }
        guard entry.epoch == sender.epoch, entry.owner == sender.node, entry.createdAt == sender.createdAt else {
            return .refuse(
                ReplicationError(
                    .staleSender,
                    "\(sender.node) at epoch \(sender.epoch) of incarnation \(sender.createdAt) is not the owner (the directory names \(entry.owner) at epoch \(entry.epoch) of \(entry.createdAt))"
                )
            )
        }
        guard entry.followers.contains(selfID) else {
            return .refuse(ReplicationError(.staleSender, "\(selfID) is not a follower at epoch \(entry.epoch)"))
        }
        return .accept
    }

    /// A shipment that continues `previous` fits a copy only at exactly that position.
    public static func check(_ copy: WALPosition, continues previous: WALPosition) -> ReplicationError? {
        copy == previous
            ? nil
            : ReplicationError(.positionMismatch, "the copy is at \(copy), the shipment continues \(previous)")
    }
}
