/// How a namespace came to exist: created through the admin API, or on its first data request.
public enum NamespaceOrigin: String, Sendable, Codable {
    case explicit
    case auto
}

/// A registered namespace's metadata. Times are milliseconds since the Unix epoch.
public struct NamespaceRecord: Sendable, Equatable, Codable {
    public var name: String
    public var origin: NamespaceOrigin
    public var locked: Bool
    /// Time to live after creation, in seconds; nil = none.
    public var ttlSeconds: Double?
    public var createdAt: Int64
    public var lastAccessAt: Int64

    public init(name: String, origin: NamespaceOrigin, createdAt: Int64) {
        self.name = name
        self.origin = origin
        self.locked = origin == .explicit
        self.ttlSeconds = nil
        self.createdAt = createdAt
        self.lastAccessAt = createdAt
    }

    /// When the TTL expires (ms since the epoch), if one is set.
    /// Saturates instead of trapping: a TTL stored by an older build may exceed today's limit.
    public var expiresAt: Int64? {
        self.ttlSeconds.map { ttl in
            let milliseconds = ttl.isFinite ? min(max(ttl, 0), GoDuration.maximumSeconds) * 1000 : 0
            let (sum, overflow) = self.createdAt.addingReportingOverflow(Int64(milliseconds))
            return overflow ? .max : sum
        }
    }
}
