/// Decides what a GC sweep archives and purges. Pure: the records, the archives and `now` go in,
/// decisions come out; `GarbageCollector` performs them.
///
/// The ancestor's rules: a locked namespace is never collected; an auto-created one idle longer than
/// the idle duration is archived; any namespace past its TTL is archived; archives older than the
/// retention are purged.
public struct GarbageCollectionPlanner: Sendable {
    public enum Decision: Equatable, Sendable {
        case archive(name: String, reason: String)
        case purge(archive: String)
    }

    /// Idle time after which an auto-created namespace is archived, in seconds.
    public var autoIdleSeconds: Double
    /// Age after which an archive is deleted, in seconds.
    public var archiveRetentionSeconds: Double

    public init(autoIdleSeconds: Double, archiveRetentionSeconds: Double) {
        self.autoIdleSeconds = autoIdleSeconds
        self.archiveRetentionSeconds = archiveRetentionSeconds
    }

    /// `archives` are (directory name, archived-at ms). Decisions are sorted by name for determinism.
    public func plan(
        records: [NamespaceRecord],
        archives: [(name: String, archivedAt: Int64)],
        now: Int64
    ) -> [Decision] {
        var decisions: [Decision] = []
        for record in records.sorted(by: { $0.name < $1.name }) where !record.locked {
            if let expiresAt = record.expiresAt, expiresAt <= now {
                decisions.append(
                    .archive(name: record.name, reason: "ttl \(GoDuration.format(record.ttlSeconds!)) expired")
                )
            } else if record.origin == .auto, Double(now - record.lastAccessAt) / 1000 > self.autoIdleSeconds {
                decisions.append(
                    .archive(
                        name: record.name,
                        reason: "auto-created idle > \(GoDuration.format(self.autoIdleSeconds))"
                    )
                )
            }
        }
        for archive in archives.sorted(by: { $0.name < $1.name })
        where Double(now - archive.archivedAt) / 1000 > self.archiveRetentionSeconds {
            decisions.append(.purge(archive: archive.name))
        }
        return decisions
    }
}
