/// Log replication: proposals, appends (batched by bytes, pipelined within the inflight window),
/// acknowledgements, fast backtracking after rejections, and the commit rule.
extension RaftNode {
    /// Appends a command to the leader's log; it is committed once the entry at the returned
    /// position is committed with the same term.
    public mutating func propose(_ command: [UInt8]) throws(RaftError) -> LogPosition {
        guard self.role == .leader else {
            throw RaftError(.notLeader, "\(self.id) is not the leader", leader: self.leader)
        }
        if let transferee = self.leadTransferee {
            throw RaftError(.transferInProgress, "leadership is moving to \(transferee)", leader: transferee)
        }
        let position = self.appendAsLeader([.command(command)])
        self.broadcastAppend()
        return position
    }

    @discardableResult
    mutating func appendAsLeader(_ payloads: [LogEntry.Payload]) -> LogPosition {
        var index = self.log.lastIndex
        let entries = payloads.map { payload in
            index += 1
            return LogEntry(term: self.term, index: index, payload: payload)
        }
        self.log.append(entries)
        return LogPosition(index: index, term: self.term)
    }

    func progressIndex(of id: ReplicaID) -> Int? {
        self.progress.firstIndex { $0.id == id }
    }

    mutating func broadcastAppend() {
        for member in self.progress.map(\.id) where member != self.id {
            self.sendAppend(to: member, sendIfEmpty: true)
        }
    }

    /// Sends the follower what it lacks from `next` on (or a snapshot if that part is compacted);
    /// returns whether a message was sent.
    @discardableResult
    mutating func sendAppend(to id: ReplicaID, sendIfEmpty: Bool) -> Bool {
        guard id != self.id, let index = self.progressIndex(of: id), !self.progress[index].isPaused else {
            return false
        }
        let next = self.progress[index].next
        guard let prevTerm = self.log.term(at: next - 1),
            let entries = self.log.entries(from: next, maxBytes: self.settings.maxBytesPerMessage)
        else {
            return self.sendSnapshot(progressIndex: index)
        }
        if entries.isEmpty && !sendIfEmpty { return false }
        self.send(
            to: id,
            .append(prevLogIndex: next - 1, prevLogTerm: prevTerm, entries: entries, commit: self.log.committed)
        )
        self.progress[index].sent(lastIndex: entries.last?.index)
        return true
    }

    mutating func broadcastHeartbeat() {
        for member in self.progress where member.id != self.id {
            let commit = min(member.match, self.log.committed)
            self.send(to: member.id, .heartbeat(commit: commit, readSequence: self.readSequence))
        }
    }

    /// Follower side of an append.
    mutating func handleAppend(
        from leader: ReplicaID,
        prevIndex: UInt64,
        prevTerm: UInt64,
        _ entries: [LogEntry],
        commit: UInt64
    ) {
        if prevIndex < self.log.committed {
            self.send(to: leader, .appendAccepted(index: self.log.committed))
            return
        }
        if let lastNew = self.log.maybeAppend(
            prevIndex: prevIndex,
            prevTerm: prevTerm,
            commit: commit,
            entries: entries
        ) {
            self.send(to: leader, .appendAccepted(index: lastNew))
        } else {
            let hint = self.log.findConflict(byTerm: prevTerm, atOrBelow: prevIndex)
            self.send(to: leader, .appendRejected(rejectedIndex: prevIndex, hintIndex: hint.index, hintTerm: hint.term))
        }
    }

    mutating func handleAppendAccepted(from id: ReplicaID, index: UInt64) {
        guard let position = self.progressIndex(of: id) else { return }
        self.progress[position].recentActive = true
        let wasPaused = self.progress[position].isPaused
        let updated = self.progress[position].maybeUpdate(index)
        // A probe answered at the known match index also proves the position: replicate again.
        let probeConfirmed = self.progress[position].state == .probe && self.progress[position].match == index
        guard updated || probeConfirmed else { return }
        switch self.progress[position].state {
        case .probe:
            self.progress[position].becomeReplicate()
        case .snapshot:
            if self.progress[position].match >= self.progress[position].pendingSnapshot {
                self.progress[position].becomeProbe()
                self.progress[position].becomeReplicate()
            }
        case .replicate:
            self.progress[position].freeInflights(through: index)
        }
        if self.maybeCommit() {
            self.broadcastAppend()
            self.committedAsLeader()
            guard self.role == .leader else { return }
        } else if wasPaused {
            // It may not know the commit index yet (it was paused when the commit was announced).
            self.sendAppend(to: id, sendIfEmpty: true)
        }
        while self.sendAppend(to: id, sendIfEmpty: false) {}
        self.continueTransfer(after: id)
    }

    mutating func handleAppendRejected(from id: ReplicaID, rejected: UInt64, hintIndex: UInt64, hintTerm: UInt64) {
        guard let position = self.progressIndex(of: id) else { return }
        self.progress[position].recentActive = true
        // The follower's entry at `hintIndex` has `hintTerm`; skip every leader entry with a larger
        // term at once instead of one index per round trip.
        let next = hintTerm > 0 ? self.log.findConflict(byTerm: hintTerm, atOrBelow: hintIndex).index : hintIndex
        if self.progress[position].maybeDecrease(rejected: rejected, hint: next) {
            if self.progress[position].state == .replicate { self.progress[position].becomeProbe() }
            self.sendAppend(to: id, sendIfEmpty: true)
        }
    }

    mutating func handleHeartbeatResponse(from id: ReplicaID, readSequence: UInt64) {
        guard let position = self.progressIndex(of: id) else { return }
        self.progress[position].recentActive = true
        self.progress[position].probeSent = false
        if self.progress[position].state == .replicate && self.progress[position].inflightFull {
            self.progress[position].inflights.removeFirst()
        }
        // A follower behind, or one probing even though caught up, gets an append: its answer
        // brings it (back) to replicate state.
        if self.progress[position].match < self.log.lastIndex || self.progress[position].state == .probe {
            self.sendAppend(to: id, sendIfEmpty: true)
        }
        self.acknowledgeRead(from: id, sequence: readSequence)
    }

    /// Records that `id` (possibly the leader itself, once its entries are durable) holds the log
    /// through `index`, and commits what a quorum now holds.
    mutating func acknowledge(from id: ReplicaID, through index: UInt64) {
        guard let position = self.progressIndex(of: id) else { return }
        if self.progress[position].maybeUpdate(index) { self.commitAndAnnounce() }
    }

    mutating func commitAndAnnounce() {
        guard self.maybeCommit() else { return }
        self.broadcastAppend()
        self.committedAsLeader()
    }

    /// The commit rule: the highest index stored on a quorum of voters, but only if that entry is
    /// of the current term (figure 8: counting replicas of an older term's entry is not enough).
    mutating func maybeCommit() -> Bool {
        let configuration = self.configuration
        guard !configuration.voters.isEmpty else { return false }
        var matches = configuration.voters.map { voter in
            self.progressIndex(of: voter).map { self.progress[$0].match } ?? 0
        }
        matches.sort(by: >)
        let candidate = matches[configuration.quorum - 1]
        guard candidate > self.log.committed else { return false }
        guard self.settings.mutations.contains(.commitOldTermEntries) || self.log.term(at: candidate) == self.term
        else { return false }
        self.log.commit(to: candidate)
        return true
    }
}
