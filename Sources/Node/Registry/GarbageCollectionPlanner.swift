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

    /// Idle time after which an auto-created namespace is archived.
    public var autoIdle: Duration
    /// Age after which an archive is deleted.
    public var archiveRetention: Duration

    public init(autoIdle: Duration, archiveRetention: Duration) {
        self.autoIdle = autoIdle
        self.archiveRetention = archiveRetention
    }

    /// `archives` are (directory name, archived-at ms) and `now` is ms since the epoch, as the
    /// registry keeps them. Decisions are sorted by name for determinism.
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
            } else if record.origin == .auto, now - record.lastAccessAt > self.autoIdle.milliseconds {
                decisions.append(
                    .archive(
                        name: record.name,
                        reason: "auto-created idle > \(GoDuration.format(self.autoIdle.seconds))"
                    )
                )
            }
        }
        for archive in archives.sorted(by: { $0.name < $1.name })
        where now - archive.archivedAt > self.archiveRetention.milliseconds {
            decisions.append(.purge(archive: archive.name))
        }
        return decisions
    }
}
