import Foundation

/// How `PageSource` numbers commits across WAL generations, places client revisions in that history,
/// and retires a generation at a checkpoint.
///
/// The newest history record may describe the generation still in the WAL (same salts): a
/// checkpoint recorded it and copied it into the main file but could not reset the WAL (another
/// process was reading). It is *provisional*: the generation counts as retired only once the WAL's
/// salts change, which SQLite does in place at the next write once nothing reads the old one; a
/// later checkpoint records it again with whatever was committed since.
extension PageSource {
    static func isProvisional(_ state: State) -> Bool {
        guard let last = state.history.history.generations.last else { return false }
        return last.salts == state.index.header?.salts
    }

    /// The sequence before the current generation's first commit.
    static func base(_ state: State) -> UInt64 {
        let history = state.history.history
        guard self.isProvisional(state), let last = history.generations.last else { return history.endSequence }
        return last.startSequence
    }

    /// The checksum recorded at `base`, when a retired generation ends there.
    static func baseChecksum(_ state: State) -> UInt64? {
        let base = self.base(state)
        return state.history.history.generations.last { $0.endSequence == base }?.endChecksum
    }

    static func revision(_ state: State, commit: Int) -> SyncRevision {
        SyncRevision(
            lineage: state.history.history.lineage,
            epoch: 0,
            sequence: self.base(state) + UInt64(commit),
            checksum: commit > 0 ? state.index.checksum(ofCommit: commit) : self.baseChecksum(state)
        )
    }

    /// Where `text` (a client's or a pinned revision) sits in this history, or nil when it is not
    /// provably part of it (another lineage, a diverged copy, the future, older than the retained
    /// history, a retired commit whose checksum was not kept): such clients get a full snapshot.
    static func position(of text: String, in state: State) -> Position? {
        let history = state.history.history
        let index = state.index
        let base = self.base(state)
        if let revision = SyncRevision(text) {
            guard revision.lineage == history.lineage, revision.epoch == 0,
                revision.sequence <= base + UInt64(index.commitCount)
            else { return nil }
            if revision.sequence > base {
                let commit = Int(revision.sequence - base)
                return revision.checksum == index.checksum(ofCommit: commit) ? .current(commit: commit) : nil
            }
            if revision.sequence == base {
                return revision.checksum == self.baseChecksum(state) ? .current(commit: 0) : nil
            }
            guard revision.sequence >= history.floorSequence,
                history.verifies(sequence: revision.sequence, checksum: revision.checksum)
            else { return nil }
            return .retired(sequence: revision.sequence)
        }
        guard let legacy = Revision(text) else { return nil }
        if legacy == .noWAL {
            return index.header == nil && base == 0 && history.generations.isEmpty ? .current(commit: 0) : nil
        }
        guard index.contains(legacy), let commit = index.commitNumber(ofFrame: legacy.frame) else { return nil }
        return .current(commit: commit)
    }

    /// Reads new commits from the WAL. A generation that left the WAL without being recorded (another
    /// process checkpointed and the WAL was restarted or replaced) makes the history unprovable:
    /// the lineage starts over, so every client resyncs instead of missing that generation's pages.
    func refresh(_ state: inout State) {
        let previous = state.index.header
        let previousCommits = state.index.commitCount
        let previousBase = Self.base(state)
        if let wal = state.wal, wal.inode != fileInode(self.walPath) {
            state.wal = nil  // the WAL was replaced: a new history
        }
        if state.wal == nil { state.wal = FileReader(path: self.walPath) }
        if let wal = state.wal {
            _ = state.index.refresh(from: wal)
        } else if state.index.header != nil {
            state.index = WALIndex()
        }
        guard let previous, previousCommits > 0, state.index.header != previous else { return }
        state.backfilledThrough = 0
        let end = previousBase + UInt64(previousCommits)
        if let last = state.history.history.generations.last, last.salts == previous.salts, last.endSequence == end {
            return  // the provisional record of that generation is now final
        }
        self.logger.error(
            "a WAL generation left the WAL without passing through a checkpoint of this backend (another process checkpointed the database?): starting a new history lineage; sync clients resynchronise",
            metadata: ["sync.database": "\(self.walPath.dropLast(4))", "sync.sequence": "\(end)"]
        )
        do {
            try state.history.restart(floorSequence: end)
        } catch {
            self.logger.critical("cannot start a new history lineage", metadata: ["sync.error": "\(error)"])
        }
    }

    struct CheckpointResult: Sendable {
        /// Commits the checkpoint moved from the WAL into the change history.
        var retiredCommits: Int
        /// The WAL's size before the checkpoint.
        var walBytes: Int
        var revision: SyncRevision
        var historyBytes: Int
    }

    /// Retires the current WAL generation: records its page sets and checksums durably, then runs
    /// `truncateWAL` (SQLite's TRUNCATE checkpoint, returning an error message or nil), then starts
    /// a new generation. If the WAL was not reset the record stays, provisional (see above). Call
    /// only under the checkpoint barrier.
    /// The byte offset just past the WAL's last committed frame, read fresh (0 without a WAL).
    func committedEnd() -> Int {
        self.state.withLock { state in
            self.refresh(&state)
            let index = state.index
            return index.header == nil ? 0 : WALIndex.headerSize + index.committedFrames * index.frameSize
        }
    }

    func checkpoint(
        retention: ChangeHistory.Retention,
        nowMilliseconds: UInt64,
        expectedCommittedEnd: Int? = nil,
        truncateWAL: () -> String?
    ) throws(PullError) -> CheckpointResult {
        try self.state.withLock { state throws(PullError) -> CheckpointResult in
            self.refresh(&state)
            let walBytes = state.wal?.size ?? 0
            let index = state.index
            // The node ships the WAL to followers first and names the end they hold: a transaction
            // committed since would be retired before any follower had it.
            let committedEnd = index.header == nil ? 0 : WALIndex.headerSize + index.committedFrames * index.frameSize
            if let expectedCommittedEnd, expectedCommittedEnd != committedEnd {
                throw PullError(
                    status: 409,
                    message:
                        "the WAL's committed end is \(committedEnd), not the shipped \(expectedCommittedEnd); retry"
                )
            }
            var recorded = false
            do {
                if Self.isProvisional(state) { try state.history.removeLast() }
                if let header = index.header, index.commitCount > 0 {
                    try state.history.append(
                        ChangeHistory.generation(
                            salt1: header.salt1,
                            salt2: header.salt2,
                            startSequence: state.history.history.endSequence,
                            pagesByCommit: index.pagesByCommit(),
                            checksums: index.checksumsByCommit,
                            retiredAtMilliseconds: nowMilliseconds
                        )
                    )
                    recorded = true
                }
            } catch {
                throw PullError(status: 500, message: "\(error)")
            }
            let failure = truncateWAL()
            // Not reset: the WAL still holds the generation (truncated or restarted, its salts go).
            if let header = index.header, WALIndex.salts(of: state.wal) == header.salts {
                state.backfilledThrough = index.commitCount
                throw PullError(status: 409, message: failure ?? "the WAL was not reset")
            }
            state.index = WALIndex()
            state.backfilledThrough = 0
            self.refresh(&state)
            try? state.history.prune(retention, nowMilliseconds: nowMilliseconds, databaseBytes: self.mainFile.size)
            return CheckpointResult(
                retiredCommits: recorded ? index.commitCount : 0,
                walBytes: walBytes,
                revision: Self.revision(state, commit: state.index.commitCount),
                historyBytes: state.history.byteCount
            )
        }
    }
}
