import ServerSupport

/// How a backend runs: `turso-sync-server --sync-server <host:port> <db-path>`, the argv of
/// `tursodb --sync-server`, so `TURSODB_BIN` can point at it.
public struct SyncServerConfiguration: Sendable {
    /// Listen host. Default 127.0.0.1.
    public var host = "127.0.0.1"
    /// Listen port.
    public var port = 8080
    /// Database file path.
    public var databasePath = ""
    /// Idle time after which a Hrana stream is closed and its transaction rolled back. Default 15 s.
    public var streamExpiry: Duration = .seconds(15)
    /// How long a pull's client may leave a chunk unread before the response is cut off (it holds a
    /// read transaction and keeps checkpoints away). `TURSO_SYNC_PULL_STALL_SECONDS`, default 60.
    public var pullWriteStall: Duration = .seconds(60)
    /// Largest request body accepted. Default 128 MiB, the node's `TURSO_MAX_BODY_BYTES` default; a
    /// node passes its own limit (`TURSO_SYNC_MAX_BODY_BYTES`) so that it enforces the only limit.
    public var maxBodyBytes = 128 << 20
    /// When set, every request must carry it in `BackendSecret.headerName` (the node sets it).
    public var secret: String?
    /// fsync the WAL on every commit (power-loss durability). Default true.
    public var synchronousFull = true
    /// Exit when the parent process dies (set by the node supervisor). Default false.
    public var exitWithParent = false
    /// Threads running SQLite work. Default 8.
    public var sqliteThreads = 8
    /// How long and how much change history checkpoints keep (`TURSO_SYNC_HISTORY_RETENTION_SECONDS`,
    /// which the node sets from `TURSO_SYNC_HISTORY_RETENTION`). Default 7 days.
    var historyRetention = ChangeHistory.Retention()

    public init() {}

    /// The configuration for `--sync-server <address> <databasePath>` (tursodb's argv, parsed by
    /// `SyncServerCommand`) and the environment (`TURSO_SYNC_EXIT_WITH_PARENT`,
    /// `TURSO_SYNC_SYNCHRONOUS` = full|normal, `TURSO_SYNC_STREAM_EXPIRY_SECONDS`,
    /// `TURSO_SYNC_MAX_BODY_BYTES`, `TURSO_SYNC_NODE_SECRET`, `TURSO_SYNC_HISTORY_RETENTION_SECONDS`).
    public init(address: String, databasePath path: String, environment: [String: String]) throws(SyncServerError) {
        guard !path.isEmpty else { throw .usage("the database path must not be empty") }
        guard let parsed = HostPort(address) else {
            throw .usage("invalid listen address \(address): expected host:port")
        }
        self.host = parsed.host.isEmpty ? "0.0.0.0" : parsed.host
        self.port = parsed.port
        self.databasePath = path
        self.exitWithParent = environment["TURSO_SYNC_EXIT_WITH_PARENT"] == "1"
        if let mode = environment["TURSO_SYNC_SYNCHRONOUS"] {
            guard mode == "full" || mode == "normal" else {
                throw .usage("TURSO_SYNC_SYNCHRONOUS must be full or normal")
            }
            self.synchronousFull = mode == "full"
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(SyncServerError) -> Int? {
            guard let text = environment[key] else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw .usage("\(key)=\(text) must be an integer between \(range.lowerBound) and \(range.upperBound)")
            }
            return value
        }
        if let seconds = try integer("TURSO_SYNC_PULL_STALL_SECONDS", 1...3600) {
            self.pullWriteStall = .seconds(seconds)
        }
        if let seconds = try integer("TURSO_SYNC_STREAM_EXPIRY_SECONDS", 1...86_400) {
            self.streamExpiry = .seconds(seconds)
        }
        if let bytes = try integer("TURSO_SYNC_MAX_BODY_BYTES", 1024...(1 << 30)) {
            self.maxBodyBytes = bytes
        }
        if let seconds = try integer("TURSO_SYNC_HISTORY_RETENTION_SECONDS", 1...(10 * 365 * 86_400)) {
            self.historyRetention.maxAgeMilliseconds = UInt64(seconds) * 1000
        }
        if let secret = environment[BackendSecret.environmentKey], !secret.isEmpty {
            self.secret = secret
        }
    }
}
