import Foundation

/// Which pages of a database *file* can differ from a copy taken earlier, from the change history:
/// how a node brings a lagging copy of a namespace's files up to date (a handoff's target, later a
/// follower) by copying those pages instead of the whole file. Read only while no backend writes
/// the files (the namespace is sealed), or the result is checked by digest afterwards.
public enum DatabaseFileDelta {
    /// A point of one history: its lineage and a sequence.
    public struct Position: Equatable, Sendable, CustomStringConvertible {
        public var lineage: UInt64
        public var sequence: UInt64

        public init(lineage: UInt64, sequence: UInt64) {
            self.lineage = lineage
            self.sequence = sequence
        }

        public var description: String { "\(String(self.lineage, radix: 16)):\(self.sequence)" }

        public init?(_ text: String) {
            let parts = text.split(separator: ":")
            guard parts.count == 2, let lineage = UInt64(parts[0], radix: 16), let sequence = UInt64(parts[1]) else {
                return nil
            }
            self.init(lineage: lineage, sequence: sequence)
        }
    }

    /// A lower bound of what the database file at `databasePath` holds, for a copy of it taken after
    /// this call: every page that later differs from that copy was changed after this position. Nil
    /// when the database has no readable history (an external tursodb, an older build).
    public static func base(databasePath: String) -> Position? {
        guard let history = self.history(databasePath) else { return nil }
        // The newest record may be provisional (its generation still in the WAL, partly copied into
        // the database file or not): then its start is the safe bound.
        var sequence = history.endSequence
        if let last = history.generations.last,
            WALIndex.salts(of: FileReader(path: databasePath + "-wal")) == last.salts
        {
            sequence = last.startSequence
        }
        return Position(lineage: history.lineage, sequence: sequence)
    }

    /// The pages (1-based, ascending) of the database file that may differ from a copy whose base was
    /// `since`: those changed by commits the history retired after it, and those of the current WAL
    /// generation (a checkpoint that could not reset the WAL may have copied them). Nil when the
    /// history does not reach back that far or is another lineage: copy the whole file.
    public static func pagesChanged(databasePath: String, since: Position) -> [UInt32]? {
        guard let history = self.history(databasePath), history.lineage == since.lineage,
            var pages = history.pagesChanged(after: since.sequence)
        else { return nil }
        if let wal = FileReader(path: databasePath + "-wal") {
            var index = WALIndex()
            _ = index.refresh(from: wal)
            for commit in index.pagesByCommit() { pages.formUnion(commit) }
        }
        pages.insert(1)
        return pages.sorted()
    }

    private static func history(_ databasePath: String) -> ChangeHistory? {
        guard let data = FileManager.default.contents(atPath: ChangeHistoryFile.path(forDatabase: databasePath)) else {
            return nil
        }
        return try? ChangeHistoryCodec.decode(Array(data)).history
    }
}
