// swift-tools-version: 6.2
import PackageDescription

/// The membership state machine and its simulator are compiled with optimizations even in debug
/// builds: the simulation tests run millions of simulated node-seconds, which takes minutes unoptimized.
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "turso-server",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "turso-server", targets: ["turso-server"]),
        .executable(name: "turso-sync-server", targets: ["turso-sync-server"]),
        .library(name: "Placement", targets: ["Placement"]),
        .library(name: "SyncServer", targets: ["SyncServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Pure: rendezvous hashing. No Foundation, no I/O.
        .target(name: "Placement"),
        // Pure: SWIM + Lifeguard membership state machine. No Foundation, no I/O.
        .target(name: "Membership", swiftSettings: optimizedInDebug),
        // The membership shell: TLS gossip listener and peer connections, certificate tooling.
        .target(
            name: "MembershipTransport",
            dependencies: [
                "Membership", "ServerSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Pure: Raft consensus state machine (etcd-style tick/step/Ready/advance). No Foundation, no I/O.
        .target(name: "Consensus", swiftSettings: optimizedInDebug),
        // Pure: the cluster directory applied from the Raft log (namespaces, owners, epochs, members).
        .target(name: "Directory"),
        .target(name: "Replication", dependencies: ["Directory"], swiftSettings: optimizedInDebug),
        // Pure: which voter changes the Raft leader proposes (Consul autopilot's shape).
        .target(name: "Autopilot", dependencies: ["Consensus", "Directory"]),
        // Pure: a node's side of namespace ownership (admit, fence, move, reclaim, archive).
        .target(name: "Ownership", dependencies: ["Directory"]),
        // Test support (not a product): the deterministic multi-node simulator with a virtual clock.
        .target(name: "ClusterTestKit", dependencies: ["Membership"], swiftSettings: optimizedInDebug),
        // Small helpers shared by the node and the backend (constant-time comparison).
        .target(name: "ServerSupport"),
        // Thin, safe wrapper over libsqlite3 shared by the backend and the node registry.
        .target(name: "SQLiteSupport", dependencies: ["CSQLite"]),
        // The built-in backend: Turso sync protocol + Hrana over HTTP on libsqlite3.
        .target(
            name: "SyncServer",
            dependencies: [
                "CSQLite", "SQLiteSupport", "ServerSupport", "Replication",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // HTTP reverse proxy: streaming, hop-by-hop headers, pooled upstream connections.
        .target(
            name: "Proxy",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The node: configuration, supervisor, registry, admin API, GC, backup, metrics.
        .target(
            name: "Node",
            dependencies: [
                "SQLiteSupport", "ServerSupport", "Proxy", "Placement", "Membership", "MembershipTransport",
                "Consensus", "Directory", "Autopilot", "Ownership", "SyncServer", "Replication",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "turso-server",
            dependencies: ["Node", "SyncServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "turso-sync-server",
            dependencies: ["SyncServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Benchmark: rendezvous placement vs a consistent-hash ring (swift run -c release placement-bench).
        .executableTarget(name: "placement-bench", dependencies: ["Placement"]),
        // Benchmark: creates through the one-node cluster log, restart and size (swift run -c release directory-bench).
        .executableTarget(name: "directory-bench", dependencies: ["Node"]),
        // Benchmark: membership cost per node in the simulator (swift run -c release membership-bench).
        .executableTarget(
            name: "membership-bench",
            dependencies: [
                "Membership", "ClusterTestKit", "MembershipTransport", .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "PlacementTests", dependencies: ["Placement"]),
        .testTarget(name: "MembershipTests", dependencies: ["Membership", "ClusterTestKit"]),
        .testTarget(name: "ConsensusTests", dependencies: ["Consensus"], swiftSettings: optimizedInDebug),
        .testTarget(name: "DirectoryTests", dependencies: ["Directory"]),
        .testTarget(
            name: "ReplicationTests",
            dependencies: ["Replication", "Directory", "Consensus", "SQLiteSupport"],
            swiftSettings: optimizedInDebug
        ),
        .testTarget(name: "AutopilotTests", dependencies: ["Autopilot", "Consensus", "Directory"]),
        .testTarget(
            name: "OwnershipTests",
            dependencies: ["Ownership", "Directory", "Consensus"],
            swiftSettings: optimizedInDebug
        ),
        .testTarget(
            name: "MembershipTransportTests",
            dependencies: ["Membership", "MembershipTransport", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "SyncServerTests", dependencies: ["SyncServer", "SQLiteSupport", "Replication"]),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "ServerSupport", .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "Proxy", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ]
)
