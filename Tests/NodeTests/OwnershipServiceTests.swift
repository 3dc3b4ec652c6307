import Directory
import Foundation
import Logging
import Ownership
import Testing

@testable import Node

/// The shell around the ownership machine on one node with a real cluster log (a sole voter) and
/// real files: what the directory applies becomes records and files, durably, in the machine's
/// order; a restart with sealed files settles them through the log.
@Suite("Ownership shell")
struct OwnershipServiceTests {
    struct Node {
        let configuration: NodeConfiguration
        let log: DirectoryLog
        let registry: NamespaceRegistry
        let ownership: OwnershipService

        var files: NamespaceFiles { self.ownership.files }

        func entry(_ name: String) -> NamespaceEntry? { self.log.entry(name) }

        func propose(_ command: DirectoryCommand) async throws -> DirectoryOutcome {
            try await self.log.propose([command]).first!
        }
    }

    static func open(_ root: String) async throws -> Node {
        var configuration = NodeConfiguration()
        configuration.dataDirectory = root
        try FileManager.default.createDirectory(
            atPath: configuration.archiveDirectory,
            withIntermediateDirectories: true
        )
        let registry = try NamespaceRegistry(directory: configuration.stateDirectory)
        let log = try DirectoryLog(
            stateDirectory: configuration.stateDirectory,
            identity: try StorageIdentity.load(stateDirectory: configuration.stateDirectory),
            metrics: NodeMetrics(),
            logger: DirectoryLogTests.logger
        )
        let supervisor = Supervisor(
            configuration: configuration,
            metrics: NodeMetrics(),
            logger: DirectoryLogTests.logger
        ) { registry.record($0) != nil }
        let ownership = try OwnershipService(
            nodeID: "a",
            log: log,
            registry: registry,
            files: NamespaceFiles(configuration: configuration),
            archives: ArchiveStore(directory: configuration.archiveDirectory),
            supervisor: supervisor,
            peers: nil,
            drainTimeout: .seconds(1),
            metrics: NodeMetrics(),
            logger: DirectoryLogTests.logger
        )
        log.observe { change in await ownership.applied(change.namespaces) }
        try await log.start()
        if log.read({ $0.members.isEmpty }) {
            _ = try await log.propose(
                ["a", "b"].flatMap { id in
                    [
                        DirectoryCommand.joinMember(id: id, storageID: "storage-\(id)", zone: ""),
                        .activateMember(id: id, storageID: "storage-\(id)"),
                    ]
                }
            )
        }
        await ownership.start()
        return Node(configuration: configuration, log: log, registry: registry, ownership: ownership)
    }

    static func create(_ name: String, owner: String = "a", createdAt: UInt64 = 1_000) -> DirectoryCommand {
        .createNamespace(
            name: name,
            owner: owner,
            origin: .explicit,
            locked: true,
            ttlMilliseconds: nil,
            createdAt: createdAt
        )
    }

    /// Waits (bounded) until `condition` holds: proposals the shell makes apply asynchronously.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func createdNamespacesAreHeldAndTheirMetadataFollowsTheDirectory() async throws {
        try await DirectoryLogTests.withStateDirectory { root in
            let node = try await Self.open(root)
            defer { node.log.stop() }
            #expect(try await node.propose(Self.create("shop")) == .applied)
            // Applied, observed, and held before the proposal returned.
            #expect(node.registry.record("shop")?.locked == true)
            #expect(node.registry.copy("shop") == .held(.init(createdAt: 1_000, epoch: 1)))
            #expect(await node.ownership.admit("shop", timeout: .seconds(1)) == .serve)
            node.ownership.finished("shop")
            #expect(try await node.propose(.setLocked(name: "shop", locked: false)) == .applied)
            #expect(node.registry.record("shop")?.locked == false)
            // Owned elsewhere: forwarded, nothing held here.
            #expect(try await node.propose(Self.create("far", owner: "b")) == .applied)
            #expect(node.ownership.admission("far") == .forward(owner: "b"))
            #expect(node.registry.copy("far") == nil && node.registry.record("far") == nil)
            #expect(node.ownership.admission("none") == .absent)
        }
    }

    @Test func archivingMovesTheFilesAwayAndFreesTheName() async throws {
        try await DirectoryLogTests.withStateDirectory { root in
            let node = try await Self.open(root)
            defer { node.log.stop() }
            #expect(try await node.propose(Self.create("old")) == .applied)
            let path = node.configuration.databasePath("old")
            #expect(FileManager.default.createFile(atPath: path, contents: Data("data".utf8)))
            #expect(await node.ownership.archive("old", timeout: .seconds(10)))
            #expect(node.entry("old") == nil)
            #expect(node.registry.copy("old") == nil && node.registry.record("old") == nil)
            #expect(!FileManager.default.fileExists(atPath: path))
            let folder = try #require(node.ownership.takeArchiveFolder("old"))
            #expect(FileManager.default.fileExists(atPath: folder + "/old.db"))
        }
    }

    @Test func sealedFilesFoundAtRestartAreReclaimedThroughTheLog() async throws {
        try await DirectoryLogTests.withStateDirectory { root in
            let first = try await Self.open(root)
            #expect(try await first.propose(Self.create("moving")) == .applied)
            let path = first.configuration.databasePath("moving")
            #expect(FileManager.default.createFile(atPath: path, contents: Data("kept".utf8)))
            // A crash after sealing for a move whose outcome nobody learnt.
            let record = try #require(first.registry.record("moving"))
            try await first.registry.setCopy(.sealed(.init(createdAt: 1_000, epoch: 1)), record: record)
            first.log.stop()

            let node = try await Self.open(root)
            defer { node.log.stop() }
            // The reclaim (a guarded move to itself) applied: the lost move can never apply now.
            #expect(await Self.eventually { node.registry.copy("moving") == .held(.init(createdAt: 1_000, epoch: 2)) })
            #expect(node.entry("moving")?.epoch == 2 && node.entry("moving")?.owner == "a")
            #expect(node.ownership.admission("moving") == .serve)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("kept".utf8))
        }
    }

    @Test func filesOfAnEarlierReleaseAreAdoptedAtTheVersionTheLogSays() async throws {
        try await DirectoryLogTests.withStateDirectory { root in
            let first = try await Self.open(root)
            #expect(try await first.propose(Self.create("kept")) == .applied)
            let moved = DirectoryCommand.guarded(createdAt: 1_000, .moveNamespace(name: "kept", epoch: 1, owner: "a"))
            #expect(try await first.propose(moved) == .applied)
            let path = first.configuration.databasePath("kept")
            #expect(FileManager.default.createFile(atPath: path, contents: Data("old".utf8)))
            // An earlier release kept the record and the files, but no copy row.
            try first.registry.connection.withLock { try $0.run("DELETE FROM copies") }
            first.log.stop()

            let node = try await Self.open(root)
            defer { node.log.stop() }
            #expect(node.registry.copy("kept") == .held(.init(createdAt: 1_000, epoch: 2)))
            #expect(node.ownership.admission("kept") == .serve)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("old".utf8))
        }
    }

    @Test func namespacesAnEarlierReleaseKeptOnlyInItsRegistryAreImportedIntoTheLog() async throws {
        try await DirectoryLogTests.withStateDirectory { root in
            let first = try await Self.open(root)
            // Another incarnation of "twin" is in the log, owned elsewhere.
            #expect(try await first.propose(Self.create("twin", owner: "b")) == .applied)
            for name in ["legacy", "twin"] {
                _ = try await first.registry.create(name, origin: .explicit, now: 5_000, maxNamespaces: 0)
                let path = first.configuration.databasePath(name)
                #expect(FileManager.default.createFile(atPath: path, contents: Data(name.utf8)))
            }
            first.log.stop()

            let node = try await Self.open(root)
            defer { node.log.stop() }
            #expect(await Self.eventually { node.registry.copy("legacy") == .held(.init(createdAt: 5_000, epoch: 1)) })
            #expect(node.entry("legacy")?.owner == "a" && node.entry("legacy")?.createdAt == 5_000)
            #expect(await Self.eventually { !node.ownership.isImporting("legacy") })
            #expect(node.ownership.admission("legacy") == .serve)
            let legacy = node.configuration.databasePath("legacy")
            #expect(try Data(contentsOf: URL(fileURLWithPath: legacy)) == Data("legacy".utf8))
            // The log's "twin" is not this one: its files are archived, never served or deleted.
            #expect(await Self.eventually { node.registry.record("twin") == nil })
            #expect(!FileManager.default.fileExists(atPath: node.configuration.databasePath("twin")))
            let archived = try FileManager.default.contentsOfDirectory(atPath: node.configuration.archiveDirectory)
            #expect(archived.contains { $0.hasPrefix("twin.stale") })
            #expect(node.ownership.admission("twin") == .forward(owner: "b"))
        }
    }

    @Test func aMoveThatAppliedDropsTheSealedCopyAndStagingWaitsForItsVersion() async throws {
        try await DirectoryLogTests.withStateDirectory { root in
            let node = try await Self.open(root)
            defer { node.log.stop() }
            #expect(try await node.propose(Self.create("gone")) == .applied)
            let path = node.configuration.databasePath("gone")
            #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
            let record = try #require(node.registry.record("gone"))
            try await node.registry.setCopy(.sealed(.init(createdAt: 1_000, epoch: 1)), record: record)
            // The move this node proposed before losing the answer applies.
            let move = DirectoryCommand.guarded(createdAt: 1_000, .moveNamespace(name: "gone", epoch: 1, owner: "b"))
            #expect(try await node.propose(move) == .applied)
            #expect(await Self.eventually { node.registry.copy("gone") == nil })
            #expect(!FileManager.default.fileExists(atPath: path))
            #expect(node.ownership.admission("gone") == .forward(owner: "b"))

            // This node takes only the next version of what it applied.
            #expect(node.ownership.acceptsTransfer("gone", .init(createdAt: 1_000, epoch: 3)))
            #expect(!node.ownership.acceptsTransfer("gone", .init(createdAt: 1_000, epoch: 2)))
            #expect(!node.ownership.acceptsTransfer("gone", .init(createdAt: 999, epoch: 3)))
            let staging = node.files.stagingPath("gone", .db)
            try FileManager.default.createDirectory(
                atPath: (staging as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            #expect(FileManager.default.createFile(atPath: staging, contents: Data("moved".utf8)))
            let moved = try NamespaceFiles.digest(staging)
            #expect(
                !(await node.ownership.staged(
                    "gone",
                    .init(createdAt: 1_000, epoch: 3),
                    expected: [.db: .init(size: 1, sha256: "")]
                ))
            )
            #expect(await node.ownership.staged("gone", .init(createdAt: 1_000, epoch: 3), expected: [.db: moved]))
            #expect(node.files.stagedVersion("gone") == .init(createdAt: 1_000, epoch: 3))
            // The move back applies: the staged files are installed and served.
            let back = DirectoryCommand.guarded(createdAt: 1_000, .moveNamespace(name: "gone", epoch: 2, owner: "a"))
            #expect(try await node.propose(back) == .applied)
            #expect(node.registry.copy("gone") == .held(.init(createdAt: 1_000, epoch: 3)))
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("moved".utf8))
            #expect(node.files.stagedVersion("gone") == nil)
            #expect(node.ownership.admission("gone") == .serve)
        }
    }
}
