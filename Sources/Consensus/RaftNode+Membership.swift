/// Single-server membership changes. A change is refused until the leader has committed an entry
/// of its own term (otherwise a change from a previous term may still be uncommitted, and two
/// leaders could use configurations that differ by two servers) and while another change is
/// appended but uncommitted. The change takes effect on every replica when appended.
extension RaftNode {
    /// Appends a configuration change; it is done once the entry at the returned position commits.
    /// Promoting a learner requires that it holds the log through the leader's commit index (see
    /// `replicationProgress` to decide when to ask).
    public mutating func proposeChange(_ change: ConfigurationChange) throws(RaftError) -> LogPosition {
        guard self.role == .leader else {
            throw RaftError(.notLeader, "\(self.id) is not the leader", leader: self.leader)
        }
        if let transferee = self.leadTransferee {
            throw RaftError(.transferInProgress, "leadership is moving to \(transferee)", leader: transferee)
        }
        guard self.log.term(at: self.log.committed) == self.term else {
            throw RaftError(.leaderNotReady, "no entry of term \(self.term) committed yet", leader: self.id)
        }
        guard self.log.lastConfigurationIndex <= self.log.committed else {
            throw RaftError(
                .configurationChangePending,
                "the change at \(self.log.lastConfigurationIndex) is not committed",
                leader: self.id
            )
        }
        let next = try self.configuration.applying(change)
        if case .promoteLearner(let learner) = change {
            let match = self.progressIndex(of: learner).map { self.progress[$0].match } ?? 0
            guard match >= self.log.committed else {
                throw RaftError(
                    .learnerNotCaughtUp,
                    "\(learner) matches through \(match), commit is \(self.log.committed)",
                    leader: self.id
                )
            }
        }
        let position = self.appendAsLeader([.configuration(change, next)])
        self.syncProgress()
        if case .addVoter(let id) = change, self.settings.mutations.contains(.addedVoterStartsCaughtUp),
            let index = self.progressIndex(of: id)
        {
            self.progress[index].match = self.log.lastIndex
        }
        self.broadcastAppend()
        return position
    }

    /// Makes the progress table match the configuration: new members start probing at the end of
    /// the log and count as recently active (so check-quorum gives them a round to answer).
    mutating func syncProgress() {
        var members = self.configuration.members
        if !members.contains(self.id) { members.append(self.id) }
        members.sort()
        self.progress = members.map { id in
            if let existing = self.progressIndex(of: id) { return self.progress[existing] }
            var fresh = Progress(id: id, next: self.log.lastIndex + 1, maxInflight: self.settings.maxInflightMessages)
            fresh.recentActive = true
            if id == self.id { fresh.match = self.log.stableIndex }
            return fresh
        }
    }

    /// After a commit: a leader that removed itself hands over once the removal is committed
    /// (it never campaigns again), and queued reads can start.
    mutating func committedAsLeader() {
        self.startAwaitingReads()
        if !self.configuration.contains(self.id) && self.log.committed >= self.log.lastConfigurationIndex {
            self.becomeFollower(term: self.term, leader: nil)
        }
    }
}
