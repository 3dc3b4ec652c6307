/// The membership of the group: voters elect leaders and form commit quorums; learners only
/// receive the log. Both lists are kept sorted so that equal configurations compare equal and are
/// iterated in the same order on every replica.
public struct ClusterConfiguration: Sendable, Equatable, CustomStringConvertible {
    public private(set) var voters: [ReplicaID]
    public private(set) var learners: [ReplicaID]

    public init(voters: [ReplicaID], learners: [ReplicaID] = []) {
        self.voters = voters.sorted()
        self.learners = learners.sorted()
    }

    public static let empty = ClusterConfiguration(voters: [])

    /// Votes (or matching replicas) needed for a decision: a strict majority of the voters.
    public var quorum: Int { self.voters.count / 2 + 1 }

    /// Voters and learners, sorted.
    public var members: [ReplicaID] { (self.voters + self.learners).sorted() }

    public func isVoter(_ id: ReplicaID) -> Bool { self.voters.contains(id) }
    public func isLearner(_ id: ReplicaID) -> Bool { self.learners.contains(id) }
    public func contains(_ id: ReplicaID) -> Bool { self.isVoter(id) || self.isLearner(id) }

    /// The configuration after one single-server change, or an error if the change does not fit.
    public func applying(_ change: ConfigurationChange) throws(RaftError) -> ClusterConfiguration {
        var next = self
        switch change {
        case .addVoter(let id):
            guard !self.contains(id) else { throw Self.invalid("\(id) is already a member") }
            next.voters = (self.voters + [id]).sorted()
        case .addLearner(let id):
            guard !self.contains(id) else { throw Self.invalid("\(id) is already a member") }
            next.learners = (self.learners + [id]).sorted()
        case .promoteLearner(let id):
            guard self.isLearner(id) else { throw Self.invalid("\(id) is not a learner") }
            next.learners.removeAll { $0 == id }
            next.voters = (self.voters + [id]).sorted()
        case .remove(let id):
            guard self.contains(id) else { throw Self.invalid("\(id) is not a member") }
            next.voters.removeAll { $0 == id }
            next.learners.removeAll { $0 == id }
            guard !next.voters.isEmpty else { throw Self.invalid("cannot remove the last voter") }
        }
        return next
    }

    private static func invalid(_ reason: String) -> RaftError {
        RaftError(.invalidConfigurationChange, reason)
    }

    public var description: String {
        let voters = self.voters.map(\.description).joined(separator: ",")
        let learners = self.learners.map(\.description).joined(separator: ",")
        return learners.isEmpty ? "voters(\(voters))" : "voters(\(voters)) learners(\(learners))"
    }
}

/// One single-server membership change. Changing one server at a time keeps every majority of the
/// old configuration overlapping every majority of the new one (Ongaro, §4.1), so no joint
/// consensus is needed.
public enum ConfigurationChange: Sendable, Equatable {
    case addVoter(ReplicaID)
    case addLearner(ReplicaID)
    case promoteLearner(ReplicaID)
    case remove(ReplicaID)
}
