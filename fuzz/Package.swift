// swift-tools-version: 6.2
import PackageDescription

/// Coverage-guided fuzzing (libFuzzer) of the parsers that read untrusted bytes. The targets compile
/// the project's own source files (symbolic links into ../Sources), so nothing is copied. Run with
/// `fuzz/run` (builds with `--sanitize fuzzer` and runs each target for a bounded time).
let library: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "turso-server-fuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3")
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "SQLiteSupport", dependencies: ["CSQLite"]),
        .target(name: "ServerSupport"),
        .target(name: "Membership"),
        .target(name: "Directory"),
        .target(name: "Consensus"),
        .target(name: "Replication", dependencies: ["Directory"]),
        // Go durations (environment variables, TTLs).
        .executableTarget(name: "FuzzDuration", swiftSettings: library),
        // /pull-updates: protobuf request, revisions, RoaringBitmap page selector.
        .executableTarget(name: "FuzzPull", dependencies: ["Replication"], swiftSettings: library),
        // WAL bytes shipped to a follower's copy.
        .executableTarget(name: "FuzzShipment", dependencies: ["Replication"], swiftSettings: library),
        // Hrana pipeline requests executed against a real SQLite database.
        .executableTarget(
            name: "FuzzHrana",
            dependencies: ["CSQLite", "SQLiteSupport", "ServerSupport"],
            swiftSettings: library
        ),
        // Directory log entries (the Raft log's commands).
        .executableTarget(name: "FuzzDirectory", dependencies: ["Directory"], swiftSettings: library),
        // Raft messages between members and stored entry payloads.
        .executableTarget(name: "FuzzRaft", dependencies: ["Consensus"], swiftSettings: library),
        // Membership frames between nodes.
        .executableTarget(
            name: "FuzzEnvelope",
            dependencies: ["Membership", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: library
        ),
    ]
)
