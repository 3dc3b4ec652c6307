import Consensus
import Directory
import Foundation
import Logging
import SQLiteSupport
import Testing

@testable import Node

/// The one-node cluster log: persistence across restarts, the registry import, renames, the
/// namespace cap under concurrent creates, and refusals of state that is not this node's.
@Suite("Directory log")
struct DirectoryLogTests {
    static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    static func withStateDirectory(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await body(directory)
    }

    static func open(
        _ directory: String,
        nodeID: String = "node-a",
        compaction: DirectoryLog.Compaction = .init(),
        cacheCapacity: Int = DirectoryLog.cacheCapacity
    ) throws -> (DirectoryService, NamespaceRegistry) {
        let registry = try NamespaceRegistry(directory: directory)
        let log = try DirectoryLog(
            stateDirectory: directory,
            identity: try StorageIdentity.load(stateDirectory: directory),
            metrics: NodeMetrics(),
            logger: Self.logger,
            compaction: compaction,
            cacheCapacity: cacheCapacity
        )
        return (DirectoryService(log: log, registry: registry, nodeID: nodeID, zone: "", logger: Self.logger), registry)
    }

    @Test func entryPayloadsRoundTripAndDamageIsRefused() throws {
        let configuration = ClusterConfiguration(voters: [ReplicaID(3), ReplicaID(1)], learners: [ReplicaID(9)])
        let payloads: [LogEntry.Payload] = [
            .empty, .command([]), .command([1, 2, 3]), .configuration(.addLearner(ReplicaID(9)), configuration),
            .configuration(.remove(ReplicaID(UInt64.max)), ClusterConfiguration(voters: [ReplicaID(1)])),
        ]
        for payload in payloads {
            #expect(try RaftCodec.decodePayload(RaftCodec.encode(payload)) == payload)
        }
        let encoded = RaftCodec.encode(.configuration(.addVoter(ReplicaID(5)), configuration))
        for cut in [0, 1, 2, encoded.count - 1] {
            #expect(throws: RaftCodec.DecodingError.self) {
                try RaftCodec.decodePayload(Array(encoded.prefix(cut)))
            }
        }
        #expect(throws: RaftCodec.DecodingError.self) { try RaftCodec.decodePayload([7]) }
        #expect(throws: RaftCodec.DecodingError.self) { try RaftCodec.decodePayload(encoded + [0]) }
    }

    /// A directory written before replica sets gains their column; replica sets survive a reopen.
    @Test func replicaSetsPersistAndAnOlderDirectoryGainsTheirColumn() async throws {
        try await Self.withStateDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try SQLiteConnection(path: directory + "/directory.db").execute(
                """
                CREATE TABLE meta(key TEXT PRIMARY KEY, value); INSERT INTO meta VALUES ('format_version', 1);
                CREATE TABLE namespaces(
                    name TEXT PRIMARY KEY, state INTEGER NOT NULL, owner TEXT NOT NULL, epoch INTEGER NOT NULL,
                    origin INTEGER NOT NULL, locked INTEGER NOT NULL, ttl_ms INTEGER, created_at INTEGER NOT NULL
                );
                INSERT INTO namespaces VALUES ('before', 1, 'n1', 4, 1, 0, NULL, 9);
                """
            )

            var store = try DirectoryStore(directory: directory)
            let before = try #require(try store.entries(["before"]).first)
            #expect(before.epoch == 4 && before.followers.isEmpty && before.isrVersion == 0)
            var state = DirectoryState()
            _ = state.apply(
                DirectoryBatch(commands: [
                    .joinMember(id: "n1", storageID: "s1", zone: ""), .activateMember(id: "n1", storageID: "s1"),
                    .joinMember(id: "n2", storageID: "s2", zone: ""), .activateMember(id: "n2", storageID: "s2"),
                    .raiseFormat(version: 3),
                    .createNamespace(
                        name: "after",
                        owner: "n1",
                        origin: .explicit,
                        locked: false,
                        ttlMilliseconds: nil,
                        createdAt: 10,
                        followers: ["n2"]
                    ),
                ]),
                at: 1
            )
            try store.persist(DirectoryStore.Rows(state: state, namespaces: ["after"], members: ["n1", "n2"]))
            store = try DirectoryStore(directory: directory)
            let after = try #require(try store.entries(["after"]).first)
            #expect(after == state.namespaces["after"])
            #expect(after.followers == ["n2"] && after.inSync == ["n2"] && after.isrVersion == 1)
        }
    }

    /// With a cache of four rows, nearly every row is read back from `directory.db`.
    @Test func changesSurviveARestartAndTheLogCompacts() async throws {
        try await Self.withStateDirectory { directory in
            let compaction = DirectoryLog.Compaction(threshold: 20)
            do {
                let (service, registry) = try Self.open(directory, compaction: compaction, cacheCapacity: 4)
                defer { service.log.stop() }
                #expect(try await service.start().isEmpty)
                // A one-node cluster's directory takes this build's rules at once.
                #expect(service.log.read(\.format) == DirectoryFormat.supported)
                for index in 0..<30 {
                    #expect(try await service.create("ns-\(index)", origin: .auto, now: 1_000, maxNamespaces: 0))
                }
                #expect(try await service.create("ns-3", origin: .explicit, now: 2_000, maxNamespaces: 0) == false)
                try await service.setLocked("ns-1", true)
                try await service.setTTL("ns-2", seconds: 90)
                let epoch = try await service.beginArchive("ns-4")
                try await service.finishArchive("ns-4", epoch: epoch)
                #expect(registry.count == 29)
                #expect(registry.record("ns-1")?.locked == true)
                #expect(registry.record("ns-2")?.ttlSeconds == 90)
                let entries = try RaftStore(directory: directory).entryCount()
                #expect(entries < 30, "the log was compacted (\(entries) entries kept)")
                // The snapshot (rows streamed from disk) holds every row.
                let snapshot = try #require(try RaftStore(directory: directory).load()?.snapshot)
                let decoded = try DirectoryCodec.decodeState(snapshot.data)
                #expect(decoded.namespaceCount == decoded.namespaces.count && decoded.namespaces.count >= 10)
                #expect(service.log.read(\.namespaceCount) == 29 && service.log.read(\.namespaces).count == 0)
                #expect(service.entry("ns-0")?.owner == "node-a" && service.entry("ns-4") == nil)
                #expect(
                    try service.log.page(after: "ns-27", limit: 5).map(\.name) == [
                        "ns-28", "ns-29", "ns-3", "ns-5", "ns-6",
                    ]
                )
            }
            let (service, registry) = try Self.open(directory, compaction: compaction, cacheCapacity: 4)
            defer { service.log.stop() }
            _ = try await service.start()
            let names = Set(try service.log.page(after: nil, limit: nil).map(\.name))
            #expect(names.count == 29 && !names.contains("ns-4"))
            #expect(service.entry("ns-1")?.locked == true)
            #expect(service.entry("ns-2")?.ttlMilliseconds == 90_000)
            #expect(service.entry("ns-0")?.owner == "node-a")
            #expect(registry.count == 29)
            let status = service.log.status
            #expect(status.role == .leader && status.appliedIndex == status.commitIndex)
            #expect(try await service.create("ns-4", origin: .auto, now: 3_000, maxNamespaces: 0))
        }
    }

    @Test func anOlderBuildsRegistryIsImportedOnce() async throws {
        try await Self.withStateDirectory { directory in
            do {
                let registry = try NamespaceRegistry(directory: directory)
                for name in ["kept", "locked-one", "with-ttl"] {
                    _ = try await registry.create(name, origin: .explicit, now: 5_000, maxNamespaces: 0)
                }
                _ = try await registry.update("locked-one") { $0.locked = true }
                _ = try await registry.update("with-ttl") { $0.ttlSeconds = 3600 }
                _ = try await registry.update("kept") { $0.locked = false }
            }
            do {
                let (service, _) = try Self.open(directory)
                defer { service.log.stop() }
                _ = try await service.start()
                #expect(service.entry("kept")?.locked == false)
                #expect(service.entry("locked-one")?.locked == true)
                #expect(service.entry("with-ttl")?.ttlMilliseconds == 3_600_000)
                #expect(service.entry("kept")?.createdAt == 5_000)
                let epoch = try await service.beginArchive("kept")
                try await service.finishArchive("kept", epoch: epoch)
            }
            // The import happened once: an archived namespace does not come back from the registry.
            let (service, registry) = try Self.open(directory)
            defer { service.log.stop() }
            _ = try await service.start()
            #expect(service.entry("kept") == nil)
            #expect(registry.record("kept") == nil)
            #expect(registry.count == 2)
        }
    }

    @Test func aRegistryChangedWithoutTheLogIsTheTruthAgainAndHugeTTLsAreClamped() async throws {
        try await Self.withStateDirectory { directory in
            do {
                let (service, _) = try Self.open(directory)
                defer { service.log.stop() }
                _ = try await service.start()
                for name in ["kept", "deleted-meanwhile", "half-archived"] {
                    #expect(try await service.create(name, origin: .auto, now: 1, maxNamespaces: 0))
                }
                _ = try await service.beginArchive("half-archived")
                #expect(service.interruptedArchives() == ["half-archived"])
            }
            // A clustered run (no log) deleted one namespace and created another, with a TTL from an
            // older build that no conversion may trap on; it cleared the imported flag.
            do {
                let registry = try NamespaceRegistry(directory: directory)
                try await registry.remove("deleted-meanwhile")
                _ = try await registry.create("made-meanwhile", origin: .explicit, now: 2, maxNamespaces: 0)
                _ = try await registry.update("made-meanwhile") { $0.ttlSeconds = .infinity }
                _ = try await registry.update("kept") { $0.ttlSeconds = 1e30 }
                try DirectoryStore(directory: directory).setValue("registry_imported", .integer(0))
            }
            let (service, registry) = try Self.open(directory)
            defer { service.log.stop() }
            #expect(try await service.start() == ["half-archived"])
            #expect(service.entry("deleted-meanwhile") == nil)
            #expect(service.entry("made-meanwhile")?.ttlMilliseconds == nil)
            #expect(registry.record("kept") != nil && registry.record("deleted-meanwhile") == nil)
            try await service.finishArchive("half-archived", epoch: 1)
            #expect(service.interruptedArchives().isEmpty)
        }
    }

    @Test func aRenamedNodeKeepsItsNamespaces() async throws {
        try await Self.withStateDirectory { directory in
            do {
                let (service, _) = try Self.open(directory, nodeID: "old-host")
                defer { service.log.stop() }
                _ = try await service.start()
                #expect(try await service.create("app", origin: .explicit, now: 1, maxNamespaces: 0))
            }
            let (service, registry) = try Self.open(directory, nodeID: "new-host")
            defer { service.log.stop() }
            _ = try await service.start()
            #expect(service.entry("app")?.owner == "new-host")
            #expect(service.entry("app")?.epoch == 2)
            #expect(service.log.read { $0.members["old-host"]?.state } == .left)
            #expect(registry.record("app") != nil)
            service.log.stop()
            // And back to the first name (a host name that returns).
            let (again, _) = try Self.open(directory, nodeID: "old-host")
            defer { again.log.stop() }
            _ = try await again.start()
            #expect(again.entry("app")?.owner == "old-host")
            #expect(again.log.read { $0.members["new-host"]?.state } == .left)
        }
    }

    @Test func theCapHoldsUnderConcurrentCreates() async throws {
        try await Self.withStateDirectory { directory in
            let (service, registry) = try Self.open(directory)
            defer { service.log.stop() }
            _ = try await service.start()
            let results = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        (try? await service.create("c-\(index)", origin: .auto, now: 1, maxNamespaces: 7)) ?? false
                    }
                }
                var created = 0
                for await result in group where result { created += 1 }
                return created
            }
            #expect(results == 7)
            #expect(registry.count == 7)
            await #expect(throws: NodeError.self) {
                try await service.create("one-more", origin: .auto, now: 1, maxNamespaces: 7)
            }
        }
    }

    @Test func stateThatIsNotThisNodesIsRefused() async throws {
        try await Self.withStateDirectory { first in
            try await Self.withStateDirectory { second in
                do {
                    let (service, _) = try Self.open(first)
                    defer { service.log.stop() }
                    _ = try await service.start()
                    #expect(try await service.create("app", origin: .auto, now: 1, maxNamespaces: 0))
                }
                // raft.db copied into another data directory: another storage id.
                _ = try StorageIdentity.load(stateDirectory: second)
                for file in ["raft.db", "directory.db"] {
                    try FileManager.default.copyItem(atPath: "\(first)/\(file)", toPath: "\(second)/\(file)")
                }
                #expect(throws: NodeError.self) { try Self.open(second) }
                // The directory without its log: never a fresh cluster over applied state.
                try FileManager.default.removeItem(atPath: "\(first)/raft.db")
                for suffix in ["-wal", "-shm"] {
                    try? FileManager.default.removeItem(atPath: "\(first)/raft.db\(suffix)")
                }
                #expect(throws: NodeError.self) { try Self.open(first) }
            }
        }
    }

    @Test func theStorageIdentityIsStableAndChecked() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("id-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try StorageIdentity.load(stateDirectory: directory)
        #expect(try StorageIdentity.load(stateDirectory: directory) == first)
        #expect(first.replicaID.rawValue != 0)
        try Data("not a uuid".utf8).write(to: URL(fileURLWithPath: directory + "/storage-id"))
        #expect(throws: NodeError.self) { try StorageIdentity.load(stateDirectory: directory) }
    }

    /// A member speaks only for itself: a raft message whose sender replica gossip names after
    /// another node than the connection's certificate is refused.
    @Test func aRaftMessageMustComeFromTheNodeItNames() async throws {
        try await Self.withStateDirectory { directory in
            let log = try DirectoryLog(
                stateDirectory: directory,
                identity: try StorageIdentity.load(stateDirectory: directory),
                metrics: NodeMetrics(),
                logger: Self.logger
            )
            log.name(ReplicaID(7), node: "n2")
            func message(from replica: UInt64) -> RaftMessage {
                RaftMessage(
                    from: ReplicaID(replica),
                    to: log.identity.replicaID,
                    term: 1,
                    kind: .preVoteResponse(granted: true)
                )
            }
            try RaftTransport.checkSender(message(from: 7), log: log, sender: ["n2", "n2.example"])
            try RaftTransport.checkSender(message(from: 8), log: log, sender: ["n3"])  // not named yet
            try RaftTransport.checkSender(message(from: 7), log: log, sender: nil)  // not a TLS listener
            #expect(throws: NodeError.self) {
                try RaftTransport.checkSender(message(from: 7), log: log, sender: ["n3"])
            }
        }
    }
}
