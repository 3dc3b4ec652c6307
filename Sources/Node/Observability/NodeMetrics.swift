import Prometheus
import Synchronization

/// The node's metrics, kept in a swift-prometheus registry (one per node, so several nodes in one
/// process stay apart) and rendered in the Prometheus text exposition format by `/metrics`.
///
/// The prometheus types are swift-metrics handlers; code that wants the swift-metrics API can wrap
/// them through `factory`.
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// A swift-metrics factory that records into this node's registry.
    public var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: self.registry) }

    public let proxyLatency: DurationHistogram
    public let coldStart: DurationHistogram
    public let backendStarts: Counter
    public let backendRestarts: Counter
    public let backendCrashes: Counter
    public let gcArchived: Counter
    public let gcPurged: Counter
    public let namespacesCreated: Counter
    public let handoffsOut: Counter
    public let handoffsIn: Counter
    public let handoffsFailed: Counter
    public let handoffBytes: Counter
    public let handoffDuration: DurationHistogram
    public let raftTerm: Gauge
    public let raftCommitIndex: Gauge
    public let raftAppliedIndex: Gauge
    public let raftLogEntries: Gauge
    public let raftLeaderChanges: Counter
    public let raftCommitLatency: DurationHistogram
    public let checkpoints: Counter
    public let checkpointsBusy: Counter
    public let checkpointsFailed: Counter
    public let replicationShippedBytes: Counter
    public let replicationInstalls: Counter
    public let replicationFailures: Counter
    public let replicationLagBytes: Gauge
    public let checkpointDuration: DurationHistogram
    public let checkpointedBytes: Counter
    private let running: Gauge
    private let registered: Gauge
    /// Members by lifecycle/liveness as this node sees them, e.g. `active/alive`: every combination
    /// seen so far, so a state nobody is in any more reads 0.
    private let memberStates = Mutex<[String: Gauge]>([:])
    private let requestCounters = Mutex<[RequestKey: Counter]>([:])

    private static func seconds(_ values: [Double]) -> [Duration] { values.map { .seconds($0) } }

    public init() {
        let r = self.registry
        self.proxyLatency = r.makeDurationHistogram(
            name: "turso_proxy_request_duration_seconds",
            buckets: Self.seconds([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
            help: "Time to the backend's response head for data requests."
        )
        self.coldStart = r.makeDurationHistogram(
            name: "turso_backend_cold_start_seconds",
            buckets: Self.seconds([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
            help: "Time from spawning a backend to its port accepting."
        )
        self.raftTerm = r.makeGauge(name: "turso_raft_term", help: "This node's Raft term.")
        self.raftCommitIndex = r.makeGauge(name: "turso_raft_commit_index", help: "Highest log index known committed.")
        self.raftAppliedIndex = r.makeGauge(
            name: "turso_raft_applied_index",
            help: "Highest log index applied to this node's directory (commit - applied is the apply lag)."
        )
        self.raftLogEntries = r.makeGauge(
            name: "turso_raft_log_entries",
            help: "Log entries kept after the last compaction."
        )
        self.raftLeaderChanges = r.makeCounter(
            name: "turso_raft_leader_changes_total",
            help: "Times this node saw the Raft leader change."
        )
        self.raftCommitLatency = r.makeDurationHistogram(
            name: "turso_raft_commit_seconds",
            buckets: Self.seconds([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]),
            help: "Time from proposing a directory change to applying it."
        )
        self.checkpoints = r.makeCounter(
            name: "turso_checkpoints_total",
            help: "WAL checkpoints completed by built-in backends (each retires a WAL generation)."
        )
        self.checkpointsBusy = r.makeCounter(
            name: "turso_checkpoints_deferred_total",
            help: "Checkpoints put off because requests or transactions did not drain in time."
        )
        self.checkpointsFailed = r.makeCounter(
            name: "turso_checkpoint_failures_total",
            help: "Checkpoint requests that failed (backend error or unreachable)."
        )
        self.replicationShippedBytes = r.makeCounter(
            name: "turso_replication_shipped_bytes_total",
            help: "WAL bytes this node shipped to followers as their owner."
        )
        self.replicationInstalls = r.makeCounter(
            name: "turso_replication_installs_total",
            help: "Full copies of a namespace this node sent to a follower whose copy could not be continued."
        )
        self.replicationLagBytes = r.makeGauge(
            name: "turso_replication_lag_bytes",
            help:
                "The largest WAL lag, in bytes, of a follower of a running namespace this node owns (0 when all are caught up)."
        )
        self.replicationFailures = r.makeCounter(
            name: "turso_replication_failures_total",
            help: "Shipments a follower refused or did not answer (it is asked for its copy again)."
        )
        self.checkpointDuration = r.makeDurationHistogram(
            name: "turso_checkpoint_seconds",
            buckets: Self.seconds([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
            help: "Time a checkpoint request took, barrier wait included."
        )
        self.checkpointedBytes = r.makeCounter(
            name: "turso_checkpointed_wal_bytes_total",
            help: "WAL bytes reclaimed by checkpoints."
        )
        self.running = r.makeGauge(name: "turso_namespaces_running", help: "Namespaces whose backend is running.")
        self.registered = r.makeGauge(name: "turso_namespaces_registered", help: "Namespaces registered on this node.")
        self.backendStarts = r.makeCounter(name: "turso_backend_starts_total", help: "Backend processes spawned.")
        self.backendRestarts = r.makeCounter(
            name: "turso_backend_restarts_total",
            help: "Backends restarted after a crash."
        )
        self.backendCrashes = r.makeCounter(
            name: "turso_backend_crashes_total",
            help: "Backends that exited without being asked to."
        )
        self.namespacesCreated = r.makeCounter(
            name: "turso_namespaces_created_total",
            help: "Namespaces created (explicitly or on first use)."
        )
        let gcHelp = "Garbage-collection actions, by action."
        self.gcArchived = r.makeCounter(name: "turso_gc_actions_total", labels: [("action", "archive")], help: gcHelp)
        self.gcPurged = r.makeCounter(name: "turso_gc_actions_total", labels: [("action", "purge")], help: gcHelp)
        let handoffHelp = "Namespace handoffs, by direction and result."
        self.handoffsOut = r.makeCounter(
            name: "turso_handoffs_total",
            labels: [("direction", "out"), ("result", "ok")],
            help: handoffHelp
        )
        self.handoffsFailed = r.makeCounter(
            name: "turso_handoffs_total",
            labels: [("direction", "out"), ("result", "failed")],
            help: handoffHelp
        )
        self.handoffsIn = r.makeCounter(
            name: "turso_handoffs_total",
            labels: [("direction", "in"), ("result", "ok")],
            help: handoffHelp
        )
        self.handoffBytes = r.makeCounter(
            name: "turso_handoff_bytes_total",
            help: "Bytes of database and WAL copied to this node by handoffs."
        )
        self.handoffDuration = r.makeDurationHistogram(
            name: "turso_handoff_duration_seconds",
            buckets: Self.seconds([0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]),
            help: "Time a namespace was fenced while handed off."
        )
    }

    /// Counts a request this node forwarded to another member, by outcome (`ok`, `retried`, `failed`).
    public func countForwarded(_ outcome: String) {
        self.registry.makeCounter(
            name: "turso_forwarded_requests_total",
            labels: [("outcome", outcome)],
            help: "Requests forwarded to the owning member, by outcome."
        ).increment()
    }

    /// Counts a finished request on `listener` ("data", "admin" or "peer") with its status. On the
    /// request path: the counter is looked up in a small cache, not the registry.
    public func countRequest(listener: String, status: Int) {
        let key = RequestKey(listener: listener, status: status)
        if let counter = self.requestCounters.withLock({ $0[key] }) {
            counter.increment()
            return
        }
        let counter = self.registry.makeCounter(
            name: "turso_http_requests_total",
            labels: [("listener", listener), ("status", String(status))],
            help: "HTTP requests answered, by listener and status."
        )
        self.requestCounters.withLock { $0[key] = counter }
        counter.increment()
    }

    private struct RequestKey: Hashable {
        var listener: String
        var status: Int
    }

    public func setMemberStates(_ counts: [String: Int]) {
        self.memberStates.withLock { gauges in
            for key in counts.keys where gauges[key] == nil {
                let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                gauges[key] = self.registry.makeGauge(
                    name: "turso_cluster_members",
                    labels: [("state", parts.first ?? ""), ("liveness", parts.count > 1 ? parts[1] : "")],
                    help: "Members this node knows, by lifecycle state and liveness."
                )
            }
            for (key, gauge) in gauges { gauge.set(Double(counts[key] ?? 0)) }
        }
    }

    public func setRunning(_ count: Int) { self.running.set(Double(count)) }

    /// The exposition text, with the registered-namespace count as of now.
    public func render(registered: Int) -> String {
        self.registered.set(Double(registered))
        return self.registry.emitToString()
    }
}
