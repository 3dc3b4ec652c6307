/// Leader transfer (Ongaro §3.10): the leader stops taking proposals, brings the target up to date,
/// then tells it to campaign at once (`timeoutNow`); the target's vote requests carry the transfer
/// flag so that voters skip the lease check. Abandoned after an election timeout.
extension RaftNode {
    /// The replica leadership is being handed to, if a transfer is under way.
    public var transferee: ReplicaID? { self.leadTransferee }

    public mutating func transferLeadership(to target: ReplicaID) throws(RaftError) {
        guard self.role == .leader else {
            throw RaftError(.notLeader, "\(self.id) is not the leader", leader: self.leader)
        }
        guard target != self.id, self.configuration.isVoter(target), let position = self.progressIndex(of: target)
        else {
            throw RaftError(.invalidConfigurationChange, "\(target) is not another voter", leader: self.id)
        }
        self.leadTransferee = target
        self.electionElapsed = 0  // the transfer must finish within one election timeout
        if self.progress[position].match == self.log.lastIndex {
            self.send(to: target, .timeoutNow)
        } else {
            self.sendAppend(to: target, sendIfEmpty: true)
        }
    }

    /// Called when the transferee acknowledged entries: once it has the whole log, it may campaign.
    mutating func continueTransfer(after id: ReplicaID) {
        guard self.leadTransferee == id, let position = self.progressIndex(of: id),
            self.progress[position].match == self.log.lastIndex
        else { return }
        self.send(to: id, .timeoutNow)
    }
}
