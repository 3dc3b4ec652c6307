/// What `turso-server --help` says beyond the generated usage: the environment a node reads.
public enum NodeHelp {
    public static let version = "0.1.0"

    /// The environment a node reads, for `turso-server --help`.
    public static let environment = """
        Environment (defaults in brackets):
          TURSO_DATA_ADDR [:8080]            data listener: /<namespace>/... is proxied to the namespace
          TURSO_ADMIN_ADDR [:8081]           admin listener: /v1/namespaces, /metrics, /healthz, /readyz
          TURSO_DATA_DIR [/var/lib/turso]    databases, _state/ and archive/
          TURSODB_BIN [/usr/local/bin/tursodb]  backend binary; the built-in backend if not executable
          TURSO_AUTH_TOKEN, TURSO_ADMIN_TOKEN   bearer tokens (empty = no auth, logged as a warning)
          TURSO_BACKEND_PORT_START/_END [9000/9999]  loopback ports for backends
          TURSO_MAX_NAMESPACES [256]         registered namespaces cap (0 = unlimited)
          TURSO_MAX_RUNNING [256]            backends running at once (least recently used idle ones stop)
          TURSO_ALLOW_AUTO_PROVISION [true]  create namespaces on their first data request
          TURSO_STARTUP_TIMEOUT [5s], TURSO_GC_INTERVAL [1h], TURSO_AUTO_IDLE_DURATION [168h],
          TURSO_ARCHIVE_RETENTION [720h], TURSO_ACCESS_FLUSH_INTERVAL [60s], TURSO_UPSTREAM_TIMEOUT [330s],
          TURSO_IDLE_TIMEOUT [75s], TURSO_SHUTDOWN_TIMEOUT [25s], TURSO_MAX_BODY_BYTES [134217728],
          TURSO_LOG_LEVEL [info]

        Cluster (none set = a single node, as above):
          TURSO_NODE_ID [host name]          identity; the CN or a DNS SAN of this node's certificate
          TURSO_JOIN                         gossip addresses (host:port or DNS names) of other members
          TURSO_TLS_CA, TURSO_TLS_CERT, TURSO_TLS_KEY   PEM files for mutual TLS between nodes
          TURSO_GOSSIP_ADDR [:7946], TURSO_PEER_ADDR [:8082], TURSO_ADVERTISE_HOST [listen host]
          TURSO_ZONE, TURSO_MEMBERSHIP_PRESET [lan], TURSO_LEAVE_TIMEOUT [120s],
          TURSO_HANDOFF_DRAIN_TIMEOUT [5s], TURSO_INSECURE_CLUSTER [false] (development only)
        """
}
