import Foundation

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
    /// Time for a backend to accept connections, in seconds. `TURSO_STARTUP_TIMEOUT`, default 5s.
    public var startupTimeout = 5.0
    /// GC sweep period, seconds. `TURSO_GC_INTERVAL`, default 1h.
    public var gcInterval = 3600.0
    /// Auto-created namespaces idle longer than this are archived, seconds. `TURSO_AUTO_IDLE_DURATION`, 168h.
    public var autoIdleDuration = 168 * 3600.0
    /// Archives older than this are deleted, seconds. `TURSO_ARCHIVE_RETENTION`, default 720h.
    public var archiveRetention = 720 * 3600.0
    /// How often lastAccessAt is flushed to disk, seconds. `TURSO_ACCESS_FLUSH_INTERVAL`, default 60s.
    public var accessFlushInterval = 60.0
    /// Largest request body on the data port, bytes. `TURSO_MAX_BODY_BYTES`, default 128 MiB.
    public var maxBodyBytes = 128 << 20
    /// Largest admin request body, bytes. Fixed at 64 KiB (admin bodies are tiny JSON).
    public var maxAdminBodyBytes = 64 << 10
    /// Time a backend may take to answer (covers long-polls), seconds. `TURSO_UPSTREAM_TIMEOUT`, default 330s.
    public var upstreamTimeout = 330.0
    /// Idle time after which a client connection is closed, seconds. `TURSO_IDLE_TIMEOUT`, default 75s.
    public var idleTimeout = 75.0
    /// Time to drain in-flight requests on shutdown, seconds. `TURSO_SHUTDOWN_TIMEOUT`, default 25s.
    public var shutdownTimeout = 25.0
    /// Log level: trace, debug, info, notice, warning, error, critical. `TURSO_LOG_LEVEL`, default info.
    public var logLevel = "info"
    /// Seed addresses of a cluster. `TURSO_JOIN`; clustering is not in this build (rejected when set).
    public var join: [String] = []
    /// This node's stable identity. `TURSO_NODE_ID`, default the host name.
    public var nodeID = ProcessInfo.processInfo.hostName
    /// Failure domain. `TURSO_ZONE`, default empty.
    public var zone = ""

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
        func duration(_ key: String, _ current: Double) throws(NodeError) -> Double {
            guard let text = value(key) else { return current }
            guard let seconds = GoDuration.parse(text) else {
                throw .invalidConfiguration("\(key)=\(text) is not a duration (examples: 5s, 1h30m, 168h, 30d)")
            }
            return seconds
        }
        func integer(_ key: String, _ current: Int) throws(NodeError) -> Int {
            guard let text = value(key) else { return current }
            guard let n = Int(text) else { throw .invalidConfiguration("\(key)=\(text) is not an integer") }
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
            switch text.lowercased() {
            case "1", "true", "yes", "on": self.allowAutoProvision = true
            case "0", "false", "no", "off": self.allowAutoProvision = false
            default: throw .invalidConfiguration("TURSO_ALLOW_AUTO_PROVISION=\(text) is not a boolean")
            }
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
        try self.validate()
    }

    /// Checks the whole configuration; every problem is a clear error at start, never a crash later.
    public func validate() throws(NodeError) {
        guard self.dataDirectory.hasPrefix("/") || !self.dataDirectory.isEmpty else {
            throw .invalidConfiguration("TURSO_DATA_DIR must not be empty")
        }
        guard self.maxNamespaces >= 0 else { throw .invalidConfiguration("TURSO_MAX_NAMESPACES must be >= 0") }
        guard self.maxRunning >= 1 else { throw .invalidConfiguration("TURSO_MAX_RUNNING must be >= 1") }
        guard self.startupTimeout > 0 else { throw .invalidConfiguration("TURSO_STARTUP_TIMEOUT must be > 0") }
        guard self.gcInterval >= 1 else { throw .invalidConfiguration("TURSO_GC_INTERVAL must be >= 1s") }
        guard self.accessFlushInterval > 0 else {
            throw .invalidConfiguration("TURSO_ACCESS_FLUSH_INTERVAL must be > 0")
        }
        guard self.maxBodyBytes > 0 else { throw .invalidConfiguration("TURSO_MAX_BODY_BYTES must be > 0") }
        guard self.upstreamTimeout > 0, self.idleTimeout > 0 else {
            throw .invalidConfiguration("TURSO_UPSTREAM_TIMEOUT and TURSO_IDLE_TIMEOUT must be > 0")
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
        if !self.join.isEmpty {
            throw .invalidConfiguration(
                "TURSO_JOIN is set, but this build runs single-node only; unset it (clustering is not available yet)"
            )
        }
    }

    /// Parses `:8080`, `host:8080`, `[::1]:8080`.
    static func parseAddress(_ text: String) -> ListenAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        return ListenAddress(host: host, port: port)
    }
}
