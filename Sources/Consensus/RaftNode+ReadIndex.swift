/// ReadIndex (Ongaro §6.4), without clock-based leases: the leader records its commit index,
/// confirms with a heartbeat round that a quorum still follows it, and then answers with that
/// index; the shell serves the read once it has applied through it.
extension RaftNode {
    struct PendingRead: Sendable, Equatable {
        var context: UInt64
        var index: UInt64
        var sequence: UInt64
        var acks: [ReplicaID]
    }

    /// Requests a linearizable read; the answer comes as a `ReadState` with the same `context` in a
    /// later `Ready`, or never (leadership lost: the caller retries elsewhere after a timeout).
    public mutating func readIndex(context: UInt64) throws(RaftError) {
        guard self.role == .leader else {
            throw RaftError(.notLeader, "\(self.id) is not the leader", leader: self.leader)
        }
        self.readsAwaitingCommit.append(context)
        self.startAwaitingReads()
    }

    /// Until the leader has committed an entry of its term, its commit index may be behind what
    /// earlier leaders committed: reads wait for that.
    mutating func startAwaitingReads() {
        guard self.role == .leader, !self.readsAwaitingCommit.isEmpty,
            self.log.term(at: self.log.committed) == self.term
        else { return }
        let contexts = self.readsAwaitingCommit
        self.readsAwaitingCommit = []
        let configuration = self.configuration
        if configuration.voters == [self.id] || self.settings.mutations.contains(.readWithoutHeartbeatQuorum) {
            for context in contexts {
                self.readStates.append(ReadState(context: context, index: self.log.committed))
            }
            return
        }
        self.readSequence += 1
        let acks = configuration.isVoter(self.id) ? [self.id] : []
        for context in contexts {
            self.pendingReads.append(
                PendingRead(context: context, index: self.log.committed, sequence: self.readSequence, acks: acks)
            )
        }
        self.broadcastHeartbeat()
    }

    /// A heartbeat response echoing `sequence` confirms every read registered before that heartbeat.
    mutating func acknowledgeRead(from id: ReplicaID, sequence: UInt64) {
        let configuration = self.configuration
        guard configuration.isVoter(id), !self.pendingReads.isEmpty else { return }
        for position in self.pendingReads.indices
        where self.pendingReads[position].sequence <= sequence && !self.pendingReads[position].acks.contains(id) {
            self.pendingReads[position].acks.append(id)
        }
        while let first = self.pendingReads.first,
            first.acks.filter({ configuration.isVoter($0) }).count >= configuration.quorum
        {
            self.readStates.append(ReadState(context: first.context, index: first.index))
            self.pendingReads.removeFirst()
        }
    }
}
