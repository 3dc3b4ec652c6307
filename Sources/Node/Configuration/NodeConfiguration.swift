import Foundation
import MembershipTransport
import ServerSupport

/// Everything a node is configured with. Loaded from the environment (`init(environment:)`, the
/// ancestor's variable names and defaults), validated in one place (`validate()`).
public struct NodeConfiguration: Sendable {
    /// A host and port to listen on. `:8080` means every interface.
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var description: String { "\(self.host):\(self.port)" }
    }

    /// Data port listener. `TURSO_DATA_ADDR`, default `:8080`.
    public var dataAddress = ListenAddress(host: "0.0.0.0", port: 8080)
    /// Admin port listener. `TURSO_ADMIN_ADDR`, default `:8081`.
    public var adminAddress = ListenAddress(host: "0.0.0.0", port: 8081)
    /// Databases, state and archives. `TURSO_DATA_DIR`, default `/var/lib/turso`.
    public var dataDirectory = "/var/lib/turso"
    /// Backend binary; the built-in backend when this is not an executable file. `TURSODB_BIN`.
    public var tursodbBinary = "/usr/local/bin/tursodb"
    /// Bearer token for the data port; empty = no auth. `TURSO_AUTH_TOKEN`.
    public var authToken = ""
    /// Bearer token for the admin port; empty = no auth. `TURSO_ADMIN_TOKEN`.
    public var adminToken = ""
    /// Loopback ports for backends. `TURSO_BACKEND_PORT_START`/`_END`, default 9000-9999.
    public var backendPorts = 9000...9999
    /// Registered namespaces cap, 0 = unlimited. `TURSO_MAX_NAMESPACES`, default 256.
    public var maxNamespaces = 256
    /// Backends running at once; least recently used idle ones are stopped. `TURSO_MAX_RUNNING`, default 256.
    public var maxRunning = 256
    /// Create namespaces on their first data request. `TURSO_ALLOW_AUTO_PROVISION`, default true.
    public var allowAutoProvision = true
    /// Time for a backend to accept connections. `TURSO_STARTUP_TIMEOUT`, default 5s.
    public var startupTimeout: Duration = .seconds(5)
    /// GC sweep period. `TURSO_GC_INTERVAL`, default 1h.
    public var gcInterval: Duration = .seconds(3600)
    /// Auto-created namespaces idle longer than this are archived. `TURSO_AUTO_IDLE_DURATION`, 168h.
    public var autoIdleDuration: Duration = .seconds(168 * 3600)
    /// Archives older than this are deleted. `TURSO_ARCHIVE_RETENTION`, default 720h.
    public var archiveRetention: Duration = .seconds(720 * 3600)
    /// How often lastAccessAt is flushed to disk. `TURSO_ACCESS_FLUSH_INTERVAL`, default 60s.
    public var accessFlushInterval: Duration = .seconds(60)
    /// Largest request body on the data port, bytes. `TURSO_MAX_BODY_BYTES`, default 128 MiB.
    public var maxBodyBytes = 128 << 20
    /// Largest admin request body, bytes. Fixed at 64 KiB (admin bodies are tiny JSON).
    public var maxAdminBodyBytes = 64 << 10
    /// Time a backend may take to answer (covers long-polls). `TURSO_UPSTREAM_TIMEOUT`, default 330s.
    public var upstreamTimeout: Duration = .seconds(330)
    /// Idle time after which a client connection is closed. `TURSO_IDLE_TIMEOUT`, default 75s.
    public var idleTimeout: Duration = .seconds(75)
    /// Time to drain in-flight requests on shutdown. `TURSO_SHUTDOWN_TIMEOUT`, default 25s.
    public var shutdownTimeout: Duration = .seconds(25)
    /// Log level: trace, debug, info, notice, warning, error, critical. `TURSO_LOG_LEVEL`, default info.
    public var logLevel = "info"
    /// Gossip listeners of other members (`host:port` or DNS names resolving to several). `TURSO_JOIN`;
    /// empty = a one-node cluster (unless TLS material is set, which lets others join this node).
    public var join: [String] = []
    /// This node's stable identity. `TURSO_NODE_ID`, default the host name.
    public var nodeID = ProcessInfo.processInfo.hostName
    /// Failure domain. `TURSO_ZONE`, default empty.
    public var zone = ""
    /// Membership listener (TLS). `TURSO_GOSSIP_ADDR`, default `:7946`.
    public var gossipAddress = ListenAddress(host: "0.0.0.0", port: 7946)
    /// Inter-node listener for forwarded requests and handoffs (TLS). `TURSO_PEER_ADDR`, default `:8082`.
    public var peerAddress = ListenAddress(host: "0.0.0.0", port: 8082)
    /// Host other members use to reach this node. `TURSO_ADVERTISE_HOST`, default the listen host, or
    /// the host name's address when listening on every interface.
    public var advertiseHost = ""
    /// Cluster CA, this node's certificate and key (PEM). `TURSO_TLS_CA`, `TURSO_TLS_CERT`, `TURSO_TLS_KEY`.
    public var tlsCA = ""
    public var tlsCertificate = ""
    public var tlsKey = ""
    /// Run the cluster listeners without TLS (development only). `TURSO_INSECURE_CLUSTER`, default false.
    public var insecureCluster = false
    /// Copies of each namespace, owner included (capped by the active members): the owner ships its WAL
    /// to the others, its followers. `TURSO_REPLICAS`, default 1 while replication lands (the output
    /// gate and the in-sync rules come next).
    public var replicas = 1
    /// The in-sync set's floor, owner included (at most `replicas`). `TURSO_MIN_INSYNC`, default 2
    /// capped by `replicas`. Recorded now; enforced by the output gate (the next replication step).
    public var minInSync = 1
    /// Members that found the cluster log together, as its first voters. `TURSO_BOOTSTRAP_EXPECT`,
    /// default 1 without `TURSO_JOIN` (the node founds it alone) and 3 with it. Set it to the number
    /// of nodes of the first deploy: only then is exactly one cluster guaranteed when they all start
    /// at once.
    public var bootstrapExpect = 1
    /// Raft voters the leader keeps (odd, 1-5); other members are learners. `TURSO_VOTERS`, default 3.
    public var voters = 3
    /// `TURSO_ROLE`: `member` (default) or `witness`, a member that holds no namespaces and is
    /// promoted to voter first (the third voter of a two-node cluster).
    public var isWitness = false
    /// Membership timing: `lan`, `wan` or `local-testing`. `TURSO_MEMBERSHIP_PRESET`, default lan.
    public var membershipPreset = "lan"
    /// Longest wait for a namespace's in-flight requests when it is handed off.
    /// `TURSO_HANDOFF_DRAIN_TIMEOUT`, default 5s.
    public var handoffDrainTimeout: Duration = .seconds(5)
    /// Longest time a leaving node spends handing off its namespaces. `TURSO_LEAVE_TIMEOUT`,
    /// default 120s.
    public var leaveTimeout: Duration = .seconds(120)

    /// WAL size at which the node asks a built-in backend to checkpoint (a soft limit).
    /// `TURSO_SYNC_WAL_LIMIT`, bytes or with a unit (`64MiB`, `512KiB`, `1GiB`), default 64 MiB.
    public var syncWALLimit = 64 << 20
    /// How long the change index lets old clients pull incrementally after a checkpoint.
    /// `TURSO_SYNC_HISTORY_RETENTION`, default 7d.
    public var syncHistoryRetention: Duration = .seconds(7 * 86_400)
    /// How long a namespace goes without requests before its WAL is checkpointed anyway (not
    /// configurable: idle namespaces start fast).
    public var checkpointWhenIdleFor: Duration = .seconds(30)

    /// The accepted range of every duration variable, in seconds. Bounded so that no timer or
    /// deadline computed from them can overflow, and so that a typo (`5h` for `5s`) stays plausible.
    static let durationRanges: [String: ClosedRange<Double>] = [
        "TURSO_STARTUP_TIMEOUT": 0.001...3600,
        "TURSO_GC_INTERVAL": 1...(30 * 86_400),
        "TURSO_AUTO_IDLE_DURATION": 0...(36_500 * 86_400),
        "TURSO_ARCHIVE_RETENTION": 0...(36_500 * 86_400),
        "TURSO_ACCESS_FLUSH_INTERVAL": 0.001...86_400,
        "TURSO_UPSTREAM_TIMEOUT": 0.001...86_400,
        "TURSO_IDLE_TIMEOUT": 0.001...86_400,
        "TURSO_SHUTDOWN_TIMEOUT": 0...3600,
        "TURSO_HANDOFF_DRAIN_TIMEOUT": 0.001...3600,
        "TURSO_LEAVE_TIMEOUT": 0.001...86_400,
        "TURSO_SYNC_HISTORY_RETENTION": 1...(3650 * 86_400),
    ]

    /// The accepted range of every integer variable.
    static let integerRanges: [String: ClosedRange<Int>] = [
        "TURSO_BACKEND_PORT_START": 1...65535,
        "TURSO_BACKEND_PORT_END": 1...65535,
        "TURSO_MAX_NAMESPACES": 0...100_000_000,
        "TURSO_MAX_RUNNING": 1...1_000_000,
        "TURSO_MAX_BODY_BYTES": 1024...(1 << 30),
        "TURSO_REPLICAS": 1...9,
        "TURSO_MIN_INSYNC": 1...9,
        "TURSO_BOOTSTRAP_EXPECT": 1...64,
        "TURSO_VOTERS": 1...5,
        "TURSO_SYNC_WAL_LIMIT": (64 << 10)...(64 << 30),
    ]

    /// True when this node takes part in a cluster (gossip and peer listeners run).
    public var isClustered: Bool { !self.join.isEmpty || !self.tlsCA.isEmpty || self.insecureCluster }

    public init() {}

    public var stateDirectory: String { self.dataDirectory + "/_state" }
    public var archiveDirectory: String { self.dataDirectory + "/archive" }

    public func databasePath(_ name: String) -> String { "\(self.dataDirectory)/\(name).db" }

    /// Reads the configuration from environment variables; unset variables keep their defaults.
    public init(environment env: [String: String]) throws(NodeError) {
        func value(_ key: String) -> String? {
            guard let v = env[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func duration(_ key: String, _ current: Duration) throws(NodeError) -> Duration {
            guard let text = value(key) else { return current }
            switch GoDuration.parse(text, field: key, range: Self.durationRanges[key] ?? 0...GoDuration.maximumSeconds)
            {
            case .success(let seconds): return .seconds(seconds)
            case .failure(let problem): throw .invalidConfiguration(problem.message)
            }
        }
        func integer(_ key: String, _ current: Int) throws(NodeError) -> Int {
            guard let text = value(key) else { return current }
            let range = Self.integerRanges[key] ?? 0...Int.max
            guard let n = Int(text), range.contains(n) else {
                throw .invalidConfiguration(
                    "\(key)=\(text) is not an integer between \(range.lowerBound) and \(range.upperBound)"
                )
            }
            return n
        }
        func address(_ key: String, _ current: ListenAddress) throws(NodeError) -> ListenAddress {
            guard let text = value(key) else { return current }
            guard let parsed = Self.parseAddress(text) else {
                throw .invalidConfiguration("\(key)=\(text) is not a listen address (examples: :8080, 127.0.0.1:8080)")
            }
            return parsed
        }
        self.init()
        self.dataAddress = try address("TURSO_DATA_ADDR", self.dataAddress)
        self.adminAddress = try address("TURSO_ADMIN_ADDR", self.adminAddress)
        self.dataDirectory = value("TURSO_DATA_DIR") ?? self.dataDirectory
        while self.dataDirectory.count > 1 && self.dataDirectory.hasSuffix("/") { self.dataDirectory.removeLast() }
        self.tursodbBinary = value("TURSODB_BIN") ?? self.tursodbBinary
        self.authToken = env["TURSO_AUTH_TOKEN"] ?? ""
        self.adminToken = env["TURSO_ADMIN_TOKEN"] ?? ""
        let start = try integer("TURSO_BACKEND_PORT_START", 9000)
        let end = try integer("TURSO_BACKEND_PORT_END", 9999)
        guard start >= 1, end <= 65535, start <= end else {
            throw .invalidConfiguration("backend port range \(start)-\(end) is invalid (1 <= start <= end <= 65535)")
        }
        self.backendPorts = start...end
        self.maxNamespaces = try integer("TURSO_MAX_NAMESPACES", self.maxNamespaces)
        self.maxRunning = try integer("TURSO_MAX_RUNNING", self.maxRunning)
        if let text = value("TURSO_ALLOW_AUTO_PROVISION") {
            guard let flag = Self.parseBool(text) else {
                throw .invalidConfiguration("TURSO_ALLOW_AUTO_PROVISION=\(text) is not a boolean")
            }
            self.allowAutoProvision = flag
        }
        self.startupTimeout = try duration("TURSO_STARTUP_TIMEOUT", self.startupTimeout)
        self.gcInterval = try duration("TURSO_GC_INTERVAL", self.gcInterval)
        self.autoIdleDuration = try duration("TURSO_AUTO_IDLE_DURATION", self.autoIdleDuration)
        self.archiveRetention = try duration("TURSO_ARCHIVE_RETENTION", self.archiveRetention)
        self.accessFlushInterval = try duration("TURSO_ACCESS_FLUSH_INTERVAL", self.accessFlushInterval)
        self.upstreamTimeout = try duration("TURSO_UPSTREAM_TIMEOUT", self.upstreamTimeout)
        self.idleTimeout = try duration("TURSO_IDLE_TIMEOUT", self.idleTimeout)
        self.shutdownTimeout = try duration("TURSO_SHUTDOWN_TIMEOUT", self.shutdownTimeout)
        self.maxBodyBytes = try integer("TURSO_MAX_BODY_BYTES", self.maxBodyBytes)
        self.logLevel = value("TURSO_LOG_LEVEL")?.lowercased() ?? self.logLevel
        self.nodeID = value("TURSO_NODE_ID") ?? self.nodeID
        self.zone = value("TURSO_ZONE") ?? ""
        self.join = (value("TURSO_JOIN") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        self.gossipAddress = try address("TURSO_GOSSIP_ADDR", self.gossipAddress)
        self.peerAddress = try address("TURSO_PEER_ADDR", self.peerAddress)
        self.advertiseHost = value("TURSO_ADVERTISE_HOST") ?? ""
        self.tlsCA = value("TURSO_TLS_CA") ?? ""
        self.tlsCertificate = value("TURSO_TLS_CERT") ?? ""
        self.tlsKey = value("TURSO_TLS_KEY") ?? ""
        if let text = value("TURSO_INSECURE_CLUSTER") {
            guard let flag = Self.parseBool(text) else {
                throw .invalidConfiguration("TURSO_INSECURE_CLUSTER=\(text) is not a boolean")
            }
            self.insecureCluster = flag
        }
        self.replicas = try integer("TURSO_REPLICAS", self.replicas)
        self.minInSync = try integer("TURSO_MIN_INSYNC", min(2, self.replicas))
        self.bootstrapExpect = try integer("TURSO_BOOTSTRAP_EXPECT", self.join.isEmpty ? 1 : 3)
        self.voters = try integer("TURSO_VOTERS", self.voters)
        if let role = value("TURSO_ROLE")?.lowercased() {
            guard role == "member" || role == "witness" else {
                throw .invalidConfiguration("TURSO_ROLE=\(role) is not member or witness")
            }
            self.isWitness = role == "witness"
        }
        self.membershipPreset = value("TURSO_MEMBERSHIP_PRESET")?.lowercased() ?? self.membershipPreset
        self.handoffDrainTimeout = try duration("TURSO_HANDOFF_DRAIN_TIMEOUT", self.handoffDrainTimeout)
        self.leaveTimeout = try duration("TURSO_LEAVE_TIMEOUT", self.leaveTimeout)
        if let text = value("TURSO_SYNC_WAL_LIMIT") {
            let range = Self.integerRanges["TURSO_SYNC_WAL_LIMIT"]!
            guard let bytes = Self.parseByteSize(text), range.contains(bytes) else {
                throw .invalidConfiguration(
                    "TURSO_SYNC_WAL_LIMIT=\(text) must be a size between 64KiB and 64GiB (bytes, or with KiB, MiB, GiB)"
                )
            }
            self.syncWALLimit = bytes
        }
        self.syncHistoryRetention = try duration("TURSO_SYNC_HISTORY_RETENTION", self.syncHistoryRetention)
        try self.validate()
    }

    /// Checks the whole configuration; every problem is a clear error at start, never a crash later.
    public func validate() throws(NodeError) {
        guard self.dataDirectory.hasPrefix("/") || !self.dataDirectory.isEmpty else {
            throw .invalidConfiguration("TURSO_DATA_DIR must not be empty")
        }
        let durations: [(String, Duration)] = [
            ("TURSO_STARTUP_TIMEOUT", self.startupTimeout), ("TURSO_GC_INTERVAL", self.gcInterval),
            ("TURSO_AUTO_IDLE_DURATION", self.autoIdleDuration), ("TURSO_ARCHIVE_RETENTION", self.archiveRetention),
            ("TURSO_ACCESS_FLUSH_INTERVAL", self.accessFlushInterval),
            ("TURSO_UPSTREAM_TIMEOUT", self.upstreamTimeout), ("TURSO_IDLE_TIMEOUT", self.idleTimeout),
            ("TURSO_SHUTDOWN_TIMEOUT", self.shutdownTimeout),
            ("TURSO_HANDOFF_DRAIN_TIMEOUT", self.handoffDrainTimeout), ("TURSO_LEAVE_TIMEOUT", self.leaveTimeout),
            ("TURSO_SYNC_HISTORY_RETENTION", self.syncHistoryRetention),
        ]
        for (key, duration) in durations {
            let range = Self.durationRanges[key]!
            guard range.contains(duration.seconds) else {
                throw .invalidConfiguration(
                    "\(key) must be between \(GoDuration.format(range.lowerBound)) and \(GoDuration.format(range.upperBound))"
                )
            }
        }
        let integers: [(String, Int)] = [
            ("TURSO_MAX_NAMESPACES", self.maxNamespaces), ("TURSO_MAX_RUNNING", self.maxRunning),
            ("TURSO_MAX_BODY_BYTES", self.maxBodyBytes), ("TURSO_REPLICAS", self.replicas),
            ("TURSO_SYNC_WAL_LIMIT", self.syncWALLimit), ("TURSO_BOOTSTRAP_EXPECT", self.bootstrapExpect),
            ("TURSO_VOTERS", self.voters), ("TURSO_MIN_INSYNC", self.minInSync),
        ]
        for (key, number) in integers {
            let range = Self.integerRanges[key]!
            guard range.contains(number) else {
                throw .invalidConfiguration("\(key) must be between \(range.lowerBound) and \(range.upperBound)")
            }
        }
        guard self.minInSync <= self.replicas else {
            throw .invalidConfiguration(
                "TURSO_MIN_INSYNC=\(self.minInSync) must not exceed TURSO_REPLICAS=\(self.replicas): writes could never be acknowledged"
            )
        }
        guard self.voters % 2 == 1 else {
            throw .invalidConfiguration(
                "TURSO_VOTERS=\(self.voters) must be odd (1, 3 or 5): an even count adds no fault tolerance"
            )
        }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(self.logLevel) else {
            throw .invalidConfiguration("TURSO_LOG_LEVEL=\(self.logLevel) is not a log level")
        }
        if self.dataAddress == self.adminAddress {
            throw .invalidConfiguration("TURSO_DATA_ADDR and TURSO_ADMIN_ADDR must differ (both \(self.dataAddress))")
        }
        for address in [self.dataAddress, self.adminAddress] where self.backendPorts.contains(address.port) {
            throw .invalidConfiguration(
                "listen port \(address.port) lies inside the backend port range \(self.backendPorts)"
            )
        }
        guard !self.nodeID.isEmpty, self.nodeID.utf8.count <= 253,
            self.nodeID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
        else {
            throw .invalidConfiguration(
                "TURSO_NODE_ID=\(self.nodeID) must be 1-253 characters of letters, digits, '-', '.', '_'"
            )
        }
        try self.validateCluster()
    }

    private func validateCluster() throws(NodeError) {
        let tlsFiles = [self.tlsCA, self.tlsCertificate, self.tlsKey]
        if tlsFiles.contains(where: { !$0.isEmpty }) && tlsFiles.contains(where: \.isEmpty) {
            throw .invalidConfiguration("TURSO_TLS_CA, TURSO_TLS_CERT and TURSO_TLS_KEY must be set together")
        }
        if !self.join.isEmpty && self.tlsCA.isEmpty && !self.insecureCluster {
            throw .invalidConfiguration(
                "TURSO_JOIN is set but TURSO_TLS_CA/TURSO_TLS_CERT/TURSO_TLS_KEY are not: nodes talk over mutual TLS (make the files with `turso-server certs`, or set TURSO_INSECURE_CLUSTER=true for development)"
            )
        }
        for seed in self.join where Self.parseAddress(seed) == nil || seed.hasPrefix(":") {
            throw .invalidConfiguration("TURSO_JOIN entry \(seed) is not host:port")
        }
        if self.isWitness && !self.isClustered {
            throw .invalidConfiguration(
                "TURSO_ROLE=witness needs a cluster (TURSO_JOIN or the TLS files): a witness alone serves nothing"
            )
        }
        guard self.isClustered else { return }
        let listeners = [
            ("TURSO_DATA_ADDR", self.dataAddress), ("TURSO_ADMIN_ADDR", self.adminAddress),
            ("TURSO_GOSSIP_ADDR", self.gossipAddress), ("TURSO_PEER_ADDR", self.peerAddress),
        ]
        for (i, (name, address)) in listeners.enumerated() {
            if address.port != 0, let other = listeners[(i + 1)...].first(where: { $0.1.port == address.port }) {
                throw .invalidConfiguration("\(name) and \(other.0) use the same port \(address.port)")
            }
            if self.backendPorts.contains(address.port) {
                throw .invalidConfiguration("\(name) port \(address.port) lies inside the backend port range")
            }
        }
        guard ["lan", "wan", "local-testing"].contains(self.membershipPreset) else {
            throw .invalidConfiguration(
                "TURSO_MEMBERSHIP_PRESET=\(self.membershipPreset) is not lan, wan or local-testing"
            )
        }
    }

    /// The host peers and clients use to reach this node.
    public var advertisedHost: String {
        if !self.advertiseHost.isEmpty { return self.advertiseHost }
        if self.peerAddress.host != "0.0.0.0" && self.peerAddress.host != "::" { return self.peerAddress.host }
        return Self.hostAddress() ?? "127.0.0.1"
    }

    /// Parses `1048576`, `1024KiB`, `64MiB`, `1GiB` (also `KB`/`MB`/`GB`, powers of 1024 all the same).
    static func parseByteSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        var number = Substring(text)
        var multiplier = 1
        if let (suffix, factor) = units.first(where: { text.hasSuffix($0.0) }) {
            number = number.dropLast(suffix.count)
            multiplier = factor
        }
        guard !number.isEmpty, number.allSatisfy(\.isASCII), let value = Int(number), value >= 0,
            value <= Int.max / multiplier
        else { return nil }
        return value * multiplier
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off": false
        default: nil
        }
    }

    /// The first non-loopback IPv4 address the host name resolves to.
    static func hostAddress() -> String? {
        SeedResolver.addresses(of: ProcessInfo.processInfo.hostName, ipv4Only: true).first { !$0.hasPrefix("127.") }
    }

    /// Parses `:8080` (every interface), `host:8080`, `[::1]:8080`.
    static func parseAddress(_ text: String) -> ListenAddress? {
        HostPort(text).map { ListenAddress(host: $0.host.isEmpty ? "0.0.0.0" : $0.host, port: $0.port) }
    }
}
