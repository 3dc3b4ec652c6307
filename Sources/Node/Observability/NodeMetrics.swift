import Synchronization

/// The node's metrics, rendered in the Prometheus text exposition format by `/metrics`.
public final class NodeMetrics: Sendable {
    public final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        public func increment(by amount: Int = 1) { self.value.add(amount, ordering: .relaxed) }
        public var current: Int { self.value.load(ordering: .relaxed) }
    }

    /// A histogram with fixed bucket bounds, in seconds.
    public final class Histogram: Sendable {
        let bounds: [Double]
        private let state: Mutex<(counts: [Int], sum: Double, count: Int)>

        init(bounds: [Double]) {
            self.bounds = bounds
            self.state = Mutex((Array(repeating: 0, count: bounds.count), 0, 0))
        }

        public func observe(_ duration: Duration) {
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            self.state.withLock { state in
                if let index = self.bounds.firstIndex(where: { seconds <= $0 }) { state.counts[index] += 1 }
                state.sum += seconds
                state.count += 1
            }
        }

        func render(_ name: String, into out: inout String) {
            let (counts, sum, count) = self.state.withLock { ($0.counts, $0.sum, $0.count) }
            var cumulative = 0
            for (bound, n) in zip(self.bounds, counts) {
                cumulative += n
                out += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{le=\"+Inf\"} \(count)\n\(name)_sum \(sum)\n\(name)_count \(count)\n"
        }
    }

    private let requests = Mutex<[String: Int]>([:])
    private let running = Atomic<Int>(0)
    public let proxyLatency = Histogram(bounds: [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ])
    public let coldStart = Histogram(bounds: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    public let backendStarts = Counter()
    public let backendRestarts = Counter()
    public let backendCrashes = Counter()
    public let gcArchived = Counter()
    public let gcPurged = Counter()
    public let namespacesCreated = Counter()
    /// Requests this node forwarded to another member, by outcome (`ok`, `retried`, `failed`).
    private let forwarded = Mutex<[String: Int]>([:])
    public let handoffsOut = Counter()
    public let handoffsIn = Counter()
    public let handoffsFailed = Counter()
    public let handoffBytes = Counter()
    public let handoffDuration = Histogram(bounds: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    /// Members by lifecycle/liveness as this node sees them, e.g. `active/alive`.
    private let memberStates = Mutex<[String: Int]>([:])

    public init() {}

    public func countForwarded(_ outcome: String) { self.forwarded.withLock { $0[outcome, default: 0] += 1 } }

    public func forwardedCount(_ outcome: String) -> Int { self.forwarded.withLock { $0[outcome] ?? 0 } }

    public func setMemberStates(_ counts: [String: Int]) { self.memberStates.withLock { $0 = counts } }

    /// Counts a finished request on `listener` ("data" or "admin") with its status.
    public func countRequest(listener: String, status: Int) {
        self.requests.withLock { $0["\(listener)|\(status)", default: 0] += 1 }
    }

    public func setRunning(_ count: Int) { self.running.store(count, ordering: .relaxed) }

    public func requestCount(listener: String, status: Int) -> Int {
        self.requests.withLock { $0["\(listener)|\(status)"] ?? 0 }
    }

    public func render(registered: Int) -> String {
        var out = ""
        out += "# HELP turso_http_requests_total HTTP requests answered, by listener and status.\n"
        out += "# TYPE turso_http_requests_total counter\n"
        for (key, count) in self.requests.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|")
            out += "turso_http_requests_total{listener=\"\(parts[0])\",status=\"\(parts[1])\"} \(count)\n"
        }
        out += "# HELP turso_proxy_request_duration_seconds Time to the backend's response head for data requests.\n"
        out += "# TYPE turso_proxy_request_duration_seconds histogram\n"
        self.proxyLatency.render("turso_proxy_request_duration_seconds", into: &out)
        out += "# HELP turso_backend_cold_start_seconds Time from spawning a backend to its port accepting.\n"
        out += "# TYPE turso_backend_cold_start_seconds histogram\n"
        self.coldStart.render("turso_backend_cold_start_seconds", into: &out)
        let gauges: [(String, String, Int)] = [
            ("turso_namespaces_running", "Namespaces whose backend is running.", self.running.load(ordering: .relaxed)),
            ("turso_namespaces_registered", "Namespaces registered on this node.", registered),
        ]
        for (name, help, value) in gauges {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n\(name) \(value)\n"
        }
        let counters: [(String, String, Int)] = [
            ("turso_backend_starts_total", "Backend processes spawned.", self.backendStarts.current),
            ("turso_backend_restarts_total", "Backends restarted after a crash.", self.backendRestarts.current),
            (
                "turso_backend_crashes_total", "Backends that exited without being asked to.",
                self.backendCrashes.current
            ),
            (
                "turso_namespaces_created_total", "Namespaces created (explicitly or on first use).",
                self.namespacesCreated.current
            ),
        ]
        for (name, help, value) in counters {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
        }
        out +=
            "# HELP turso_gc_actions_total Garbage-collection actions, by action.\n# TYPE turso_gc_actions_total counter\n"
        out += "turso_gc_actions_total{action=\"archive\"} \(self.gcArchived.current)\n"
        out += "turso_gc_actions_total{action=\"purge\"} \(self.gcPurged.current)\n"
        self.renderCluster(into: &out)
        return out
    }

    private func renderCluster(into out: inout String) {
        out += "# HELP turso_forwarded_requests_total Requests forwarded to the owning member, by outcome.\n"
        out += "# TYPE turso_forwarded_requests_total counter\n"
        for (outcome, count) in self.forwarded.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "turso_forwarded_requests_total{outcome=\"\(outcome)\"} \(count)\n"
        }
        out += "# HELP turso_handoffs_total Namespace handoffs, by direction and result.\n"
        out += "# TYPE turso_handoffs_total counter\n"
        out += "turso_handoffs_total{direction=\"out\",result=\"ok\"} \(self.handoffsOut.current)\n"
        out += "turso_handoffs_total{direction=\"out\",result=\"failed\"} \(self.handoffsFailed.current)\n"
        out += "turso_handoffs_total{direction=\"in\",result=\"ok\"} \(self.handoffsIn.current)\n"
        out += "# HELP turso_handoff_bytes_total Bytes of database and WAL copied to this node by handoffs.\n"
        out += "# TYPE turso_handoff_bytes_total counter\nturso_handoff_bytes_total \(self.handoffBytes.current)\n"
        out += "# HELP turso_handoff_duration_seconds Time a namespace was fenced while handed off.\n"
        out += "# TYPE turso_handoff_duration_seconds histogram\n"
        self.handoffDuration.render("turso_handoff_duration_seconds", into: &out)
        out += "# HELP turso_cluster_members Members this node knows, by lifecycle state and liveness.\n"
        out += "# TYPE turso_cluster_members gauge\n"
        for (key, count) in self.memberStates.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/")
            out += "turso_cluster_members{state=\"\(parts[0])\",liveness=\"\(parts[1])\"} \(count)\n"
        }
    }
}
