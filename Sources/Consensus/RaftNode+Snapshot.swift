/// Snapshots and log compaction: the application compacts what it has applied; the leader sends
/// its snapshot to a follower whose next entry is compacted away.
extension RaftNode {
    /// Replaces the log through `index` (applied) by a snapshot whose state is `data`. The shell
    /// persists the returned snapshot and drops its persisted entries through `index`.
    public mutating func compact(through index: UInt64, data: [UInt8]) throws(RaftError) -> Snapshot {
        guard index > self.log.firstIndex - 1, index <= self.log.applied, let term = self.log.term(at: index) else {
            throw RaftError(
                .indexOutOfRange,
                "can compact only applied entries after \(self.log.firstIndex - 1), not \(index)"
            )
        }
        let metadata = SnapshotMetadata(index: index, term: term, configuration: self.log.configuration(at: index))
        self.log.compact(through: index)
        self.snapshot = Snapshot(metadata: metadata, data: data)
        return self.snapshot
    }

    /// The latest snapshot (what a restart begins from, and what lagging followers are sent).
    public var latestSnapshot: Snapshot { self.unstableSnapshot ?? self.snapshot }

    /// The shell tells the leader that sending a snapshot failed (or succeeded): on failure the
    /// follower goes back to probing, which resends the snapshot when needed.
    public mutating func reportSnapshot(to id: ReplicaID, failed: Bool) {
        guard self.role == .leader, let position = self.progressIndex(of: id),
            self.progress[position].state == .snapshot
        else { return }
        if failed { self.progress[position].pendingSnapshot = 0 }
        self.progress[position].becomeProbe()
    }

    mutating func sendSnapshot(progressIndex position: Int) -> Bool {
        let snapshot = self.latestSnapshot
        self.send(to: self.progress[position].id, .snapshot(snapshot))
        self.progress[position].becomeSnapshot(snapshot.metadata.index)
        return true
    }

    /// A snapshot lost on the way would pause the follower forever: after an election timeout
    /// without an acknowledgement the leader probes again (and resends the snapshot if needed).
    mutating func tickSnapshots() {
        for position in self.progress.indices where self.progress[position].state == .snapshot {
            self.progress[position].snapshotTicks += 1
            if self.progress[position].snapshotTicks >= self.settings.electionTicks {
                self.progress[position].pendingSnapshot = 0
                self.progress[position].becomeProbe()
            }
        }
    }

    /// Follower side: a snapshot at or below our commit index tells nothing new; one whose last
    /// entry we already hold just advances the commit index; otherwise it replaces the whole log.
    mutating func handleSnapshot(from leader: ReplicaID, _ snapshot: Snapshot) {
        let metadata = snapshot.metadata
        if metadata.index <= self.log.committed || self.refuses(metadata) {
            self.send(to: leader, .appendAccepted(index: self.log.committed))
            return
        }
        if self.log.matchTerm(metadata.index, metadata.term) {
            self.log.commit(to: metadata.index)
            self.send(to: leader, .appendAccepted(index: self.log.committed))
            return
        }
        self.log.restore(metadata)
        self.unstableSnapshot = snapshot
        self.send(to: leader, .appendAccepted(index: self.log.lastIndex))
    }

    /// Like etcd, a member ignores a snapshot whose configuration leaves it out (it would stop
    /// campaigning on the word of a snapshot that, since every configuration is in the log, should
    /// never say so). Unlike etcd, a replica that is no member in its own view takes it: with
    /// configurations in force on append, a leader can add a replica after its latest snapshot
    /// (and a single voter adding a second one needs it to commit the change), so refusing would
    /// leave the newcomer unable to catch up.
    func refuses(_ metadata: SnapshotMetadata) -> Bool {
        self.configuration.contains(self.id) && !metadata.configuration.contains(self.id)
    }
}
