/// The in-memory log of one replica: a snapshot base followed by entries, with the commit, apply
/// and persistence marks. Entries after `stableIndex` are not yet on stable storage; entries are
/// applied only once committed *and* persisted.
struct RaftLog: Sendable {
    /// The base: everything through `base.index` is compacted into the latest snapshot.
    private(set) var base: SnapshotMetadata
    private(set) var entries: [LogEntry]
    /// Positions (into the log, as indices) of configuration entries, ascending.
    private(set) var configurationIndices: [UInt64]
    private(set) var committed: UInt64
    private(set) var applied: UInt64
    /// Entries through this index are persisted.
    var stableIndex: UInt64
    /// Bumped on every change of the entries: lets observers skip unchanged logs cheaply.
    private(set) var version: UInt64 = 0
    /// Set only for deliberate bugs (mutation tests): a safety violation then reaches the
    /// simulation's checks, which must report it, instead of trapping here.
    var toleratesViolations = false

    init(base: SnapshotMetadata, entries: [LogEntry], committed: UInt64) {
        self.base = base
        self.entries = entries
        self.configurationIndices = entries.filter { $0.configuration != nil }.map(\.index)
        self.applied = base.index
        self.stableIndex = base.index + UInt64(entries.count)
        // A snapshot is committed; a commit index beyond the entries means lost or corrupt storage
        // (`RaftNode.init` rejects such a state before it gets here).
        precondition(committed <= base.index + UInt64(entries.count), "commit \(committed) beyond the log")
        self.committed = max(committed, base.index)
    }

    var firstIndex: UInt64 { self.base.index + 1 }
    var lastIndex: UInt64 { self.base.index + UInt64(self.entries.count) }
    var lastTerm: UInt64 { self.entries.last?.term ?? self.base.term }

    /// The term of the entry at `index`, or nil if it is compacted away or beyond the end.
    func term(at index: UInt64) -> UInt64? {
        if index == self.base.index { return self.base.term }
        guard index > self.base.index, index <= self.lastIndex else { return nil }
        return self.entries[Int(index - self.firstIndex)].term
    }

    func entry(at index: UInt64) -> LogEntry? {
        guard index >= self.firstIndex, index <= self.lastIndex else { return nil }
        return self.entries[Int(index - self.firstIndex)]
    }

    func matchTerm(_ index: UInt64, _ term: UInt64) -> Bool { self.term(at: index) == term }

    /// The configuration in force after the log's last entry (append-time semantics).
    var configuration: ClusterConfiguration { self.configuration(at: self.lastIndex) }

    /// The configuration in force at `index`: the last configuration entry at or before it.
    func configuration(at index: UInt64) -> ClusterConfiguration {
        if let position = self.configurationIndices.last(where: { $0 <= index }),
            let configuration = self.entry(at: position)?.configuration
        {
            return configuration
        }
        return self.base.configuration
    }

    /// The index of the last configuration entry (the base counts as one).
    var lastConfigurationIndex: UInt64 { self.configurationIndices.last ?? self.base.index }

    /// Raft's election restriction: is a log ending at `(index, term)` at least as up to date?
    func isUpToDate(lastIndex index: UInt64, lastTerm term: UInt64) -> Bool {
        term > self.lastTerm || (term == self.lastTerm && index >= self.lastIndex)
    }

    /// Entries from `index` on, stopping before `maxBytes` is exceeded (but at least one);
    /// nil if `index` is compacted away.
    func entries(from index: UInt64, maxBytes: Int) -> [LogEntry]? {
        guard index >= self.firstIndex else { return nil }
        guard index <= self.lastIndex else { return [] }
        var result: [LogEntry] = []
        var bytes = 0
        for entry in self.entries[Int(index - self.firstIndex)...] {
            bytes += entry.byteSize
            if !result.isEmpty && bytes > maxBytes { break }
            result.append(entry)
        }
        return result
    }

    /// Entries in `from...through` that are present (clamped to the log).
    func slice(from: UInt64, through: UInt64) -> [LogEntry] {
        let low = max(from, self.firstIndex)
        let high = min(through, self.lastIndex)
        guard low <= high else { return [] }
        return Array(self.entries[Int(low - self.firstIndex)...Int(high - self.firstIndex)])
    }

    var unstableEntries: [LogEntry] { self.slice(from: self.stableIndex + 1, through: self.lastIndex) }

    /// Committed, persisted and not yet applied.
    var entriesToApply: [LogEntry] {
        self.slice(from: self.applied + 1, through: min(self.committed, self.stableIndex))
    }

    var hasEntriesToApply: Bool { min(self.committed, self.stableIndex) > self.applied }

    /// Appends after truncating any conflicting suffix (entries must be contiguous and start at most
    /// one past the end).
    mutating func append(_ newEntries: [LogEntry]) {
        guard let first = newEntries.first else { return }
        if first.index <= self.lastIndex {
            let keep = Int(first.index) - Int(self.firstIndex)
            self.entries.removeSubrange(max(keep, 0)...)
            self.configurationIndices.removeAll { $0 >= first.index }
            self.stableIndex = min(self.stableIndex, first.index - 1)
        }
        for entry in newEntries {
            if entry.configuration != nil { self.configurationIndices.append(entry.index) }
            self.entries.append(entry)
        }
        self.version &+= 1
    }

    /// The follower side of AppendEntries: if the log matches at `(prevIndex, prevTerm)`, skips the
    /// entries already present, truncates at the first conflict, appends the rest and returns the
    /// index of the last new entry; otherwise nil.
    mutating func maybeAppend(
        prevIndex: UInt64,
        prevTerm: UInt64,
        commit: UInt64,
        entries newEntries: [LogEntry]
    ) -> UInt64? {
        guard self.matchTerm(prevIndex, prevTerm) else { return nil }
        let lastNew = prevIndex + UInt64(newEntries.count)
        if let conflict = newEntries.firstIndex(where: { !self.matchTerm($0.index, $0.term) }) {
            // Overwriting a committed entry would undo a decision (some replica may have applied
            // it): a bug elsewhere, never worth continuing from (`precondition`: kept under -O).
            precondition(
                newEntries[conflict].index > self.committed || self.toleratesViolations,
                "entry \(newEntries[conflict].index) conflicts with committed \(self.committed)"
            )
            self.append(Array(newEntries[conflict...]))
        }
        self.commit(to: min(commit, lastNew))
        return lastNew
    }

    /// The largest index at or below `index` whose term is at most `term`, with that term: where
    /// the two logs can possibly match, so one round trip skips a whole diverging term.
    func findConflict(byTerm term: UInt64, atOrBelow index: UInt64) -> (index: UInt64, term: UInt64) {
        var probe = min(index, self.lastIndex)
        while probe > self.base.index {
            let found = self.entries[Int(probe - self.firstIndex)].term
            if found <= term { return (probe, found) }
            probe -= 1
        }
        return (probe, self.term(at: probe) ?? 0)
    }

    /// Clamped to the log on purpose: a correct leader announces at most what we acknowledged, so
    /// an index beyond our log means our shell lost acknowledged writes (sent before persisting).
    /// etcd panics there; here the replica commits what it holds and the simulation's checks
    /// report the consequences (a trap would end the test run that proves they do).
    mutating func commit(to index: UInt64) {
        if index > self.committed { self.committed = min(index, self.lastIndex) }
    }

    mutating func applied(through index: UInt64) {
        if index > self.applied { self.applied = index }
    }

    /// Drops the entries through `index` (already in a snapshot taken by the application).
    mutating func compact(through index: UInt64) {
        guard index > self.base.index, let term = self.term(at: index) else { return }
        let configuration = self.configuration(at: index)
        self.entries.removeFirst(Int(index - self.base.index))
        self.configurationIndices.removeAll { $0 <= index }
        self.base = SnapshotMetadata(index: index, term: term, configuration: configuration)
        self.version &+= 1
    }

    /// Replaces the whole log by a snapshot from the leader.
    mutating func restore(_ metadata: SnapshotMetadata) {
        self.base = metadata
        self.entries = []
        self.configurationIndices = []
        self.committed = metadata.index
        self.stableIndex = metadata.index
        self.version &+= 1
    }
}
