/// The sync history of a database's retired WAL generations: which pages each commit changed, not the
/// page images (a pull sends the *current* version of every changed page, so the index is enough).
///
/// Commits are numbered by a sequence that runs across generations: the current generation's commit
/// `k` (1-based) is `endSequence + k`. Everything here is derived from the files (the history file and
/// the WAL), so every byte-identical copy computes the same numbers.
///
/// Commits are kept in groups of consecutive commits with the union of their pages: for a client inside
/// a group the answer is a superset of what changed, which is still correct (the pages are current).
/// Retention merges groups and, past an age, raises `floorSequence`: older clients get a full snapshot.
struct ChangeHistory: Equatable, Sendable {
    /// Commits `(previous group's end, endSequence]` changed `pages` (ascending, 1-based page numbers).
    struct Group: Equatable, Sendable {
        var endSequence: UInt64
        var pages: [UInt32]
    }

    /// One retired generation: the WAL between two resets.
    struct Generation: Equatable, Sendable {
        var salt1: UInt32
        var salt2: UInt32
        /// The sequence before its first commit and of its last commit.
        var startSequence: UInt64
        var endSequence: UInt64
        /// SQLite's cumulative checksum at its last commit (verifies a client revision that ends here).
        var endChecksum: UInt64
        /// When it was retired (Unix milliseconds), for age-based retention.
        var retiredAtMilliseconds: UInt64
        /// Ascending by `endSequence`; the last one ends at `endSequence`. Empty once pruned.
        var groups: [Group]
        /// The low 32 bits of the cumulative checksum at each commit (commit `startSequence + i + 1`
        /// at `i`), so a client revision inside the generation is verified, not trusted. Empty once
        /// retention dropped them (such revisions then get a full snapshot).
        var checksums: [UInt32] = []
    }

    /// Names this history: a copy whose history was replaced (a restore, a diverged copy) gets another.
    var lineage: UInt64
    /// The oldest sequence a client may hold and still pull incrementally.
    var floorSequence: UInt64
    var generations: [Generation] = []

    /// The sequence of the last retired commit: the current generation's commits follow it.
    var endSequence: UInt64 { self.generations.last?.endSequence ?? self.floorSequence }

    /// The pages changed by retired commits after `sequence`, or nil when the history no longer
    /// reaches back that far (the client needs a full snapshot).
    func pagesChanged(after sequence: UInt64) -> Set<UInt32>? {
        guard sequence >= self.floorSequence else { return nil }
        var pages = Set<UInt32>()
        for generation in self.generations.reversed() {
            guard generation.endSequence > sequence else { break }
            for group in generation.groups.reversed() {
                guard group.endSequence > sequence else { break }
                pages.formUnion(group.pages)
            }
        }
        return pages
    }

    /// Whether a client revision at `sequence` with `checksum` is a commit of this history: true only
    /// when a recorded checksum matches (a generation's end, or a kept per-commit checksum).
    func verifies(sequence: UInt64, checksum: UInt64?) -> Bool {
        guard let checksum else { return false }
        guard
            let generation = self.generations.last(where: { $0.startSequence < sequence && sequence <= $0.endSequence })
        else { return false }
        if sequence == generation.endSequence { return checksum == generation.endChecksum }
        let offset = Int(sequence - generation.startSequence) - 1
        guard generation.checksums.count == Int(generation.endSequence - generation.startSequence) else { return false }
        return generation.checksums[offset] == UInt32(truncatingIfNeeded: checksum)
    }

    // MARK: building

    /// Groups a generation's commits (`pagesByCommit[i]` is commit `startSequence + i + 1`) into at most
    /// `maxGroups` runs of consecutive commits.
    static func generation(
        salt1: UInt32,
        salt2: UInt32,
        startSequence: UInt64,
        pagesByCommit: [[UInt32]],
        checksums: [UInt64],
        retiredAtMilliseconds: UInt64,
        maxGroups: Int = 256
    ) -> Generation {
        precondition(checksums.count == pagesByCommit.count && !checksums.isEmpty)
        let perGroup = max(1, (pagesByCommit.count + maxGroups - 1) / maxGroups)
        var groups: [Group] = []
        var start = 0
        while start < pagesByCommit.count {
            let end = min(start + perGroup, pagesByCommit.count)
            var pages = Set<UInt32>()
            for commit in pagesByCommit[start..<end] { pages.formUnion(commit) }
            groups.append(Group(endSequence: startSequence + UInt64(end), pages: pages.sorted()))
            start = end
        }
        return Generation(
            salt1: salt1,
            salt2: salt2,
            startSequence: startSequence,
            endSequence: startSequence + UInt64(pagesByCommit.count),
            endChecksum: checksums[checksums.count - 1],
            retiredAtMilliseconds: retiredAtMilliseconds,
            groups: groups,
            checksums: checksums.map { UInt32(truncatingIfNeeded: $0) }
        )
    }

    // MARK: retention

    /// What bounds the history: its encoded size and the age of what it keeps.
    struct Retention: Equatable, Sendable {
        /// Generations retired longer ago than this stop serving incremental pulls.
        var maxAgeMilliseconds: UInt64 = 7 * 86_400_000
        /// The encoded history may use this many bytes, or `databaseFraction` of the database,
        /// whichever is larger, before old groups are merged.
        var minimumBytes = 1 << 20
        var databaseFraction = 0.25

        func byteBudget(databaseBytes: Int) -> Int {
            max(self.minimumBytes, Int(Double(databaseBytes) * self.databaseFraction))
        }
    }

    /// Applies `retention` at time `now`; returns true when something changed (the file is rewritten).
    mutating func prune(_ retention: Retention, nowMilliseconds: UInt64, databaseBytes: Int) -> Bool {
        var changed = false
        // Age: everything retired before the cutoff stops serving; the newest generation stays as the
        // record of `endSequence`, emptied.
        let cutoff =
            nowMilliseconds >= retention.maxAgeMilliseconds ? nowMilliseconds - retention.maxAgeMilliseconds : 0
        if let expired = self.generations.lastIndex(where: { $0.retiredAtMilliseconds < cutoff }) {
            let floor = self.generations[expired].endSequence
            if floor > self.floorSequence {
                self.floorSequence = floor
                changed = true
            }
        }
        var kept = self.generations.filter { $0.endSequence > self.floorSequence }
        if kept.isEmpty, var newest = self.generations.last {
            newest.groups = []
            kept = [newest]
        }
        if kept != self.generations {
            self.generations = kept
            changed = true
        }
        // Size: merge the oldest groups pairwise until the history fits.
        let budget = retention.byteBudget(databaseBytes: databaseBytes)
        while ChangeHistoryCodec.encodedSize(self) > budget, self.mergeOldest() { changed = true }
        return changed
    }

    /// Drops the per-commit checksums of the oldest generation that has them (its clients then resync),
    /// else halves the number of groups of the oldest generation that has more than one, else merges
    /// the two oldest generations into one group. Returns false when there is nothing left to merge.
    private mutating func mergeOldest() -> Bool {
        if let index = self.generations.firstIndex(where: { !$0.checksums.isEmpty }) {
            self.generations[index].checksums = []
            return true
        }
        if let index = self.generations.firstIndex(where: { $0.groups.count > 1 }) {
            var merged: [Group] = []
            var i = 0
            let groups = self.generations[index].groups
            while i < groups.count {
                if i + 1 < groups.count {
                    merged.append(
                        Group(
                            endSequence: groups[i + 1].endSequence,
                            pages: Set(groups[i].pages).union(groups[i + 1].pages).sorted()
                        )
                    )
                } else {
                    merged.append(groups[i])
                }
                i += 2
            }
            self.generations[index].groups = merged
            return true
        }
        guard self.generations.count > 1 else { return false }
        let first = self.generations.removeFirst()
        var second = self.generations[0]
        let pages = (first.groups + second.groups).reduce(into: Set<UInt32>()) { $0.formUnion($1.pages) }
        second.startSequence = first.startSequence
        second.groups = [Group(endSequence: second.endSequence, pages: pages.sorted())]
        second.checksums = []
        self.generations[0] = second
        return true
    }
}
