/// The one error type of the module: a code for callers to branch on, a human-readable reason,
/// and the leader as far as this replica knows (so a shell can redirect a client).
public struct RaftError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The `RaftConfiguration` or the restored state is inconsistent.
        case invalidConfiguration
        /// Proposals, configuration changes and reads are served by the leader only.
        case notLeader
        /// The leader has not yet committed an entry of its own term (no config change, no read yet).
        case leaderNotReady
        /// A configuration change is appended but not yet committed: one change at a time.
        case configurationChangePending
        /// The change does not apply to the current configuration (duplicate, unknown id, last voter).
        case invalidConfigurationChange
        /// A learner is promoted only once its log has caught up with the leader's commit index.
        case learnerNotCaughtUp
        /// A leader transfer is under way: proposals wait for the new leader.
        case transferInProgress
        /// A compaction or snapshot request refers to an index outside the allowed range.
        case indexOutOfRange
    }

    public var code: Code
    public var reason: String
    public var leader: ReplicaID?

    public init(_ code: Code, _ reason: String, leader: ReplicaID? = nil) {
        self.code = code
        self.reason = reason
        self.leader = leader
    }

    public var description: String { "\(self.code): \(self.reason)" }
}
