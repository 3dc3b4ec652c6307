import AsyncHTTPClient
import Consensus
import Directory
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MembershipTransport
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@testable import Node

/// Three replicas of the cluster log in one process, each behind its own mutual-TLS listener on
/// loopback, talking through `RaftTransport`: they elect a leader, replicate and apply the same
/// directory, survive the loss of the leader, and a restarted replica catches up from its disk.
@Suite("Cluster log over mutual TLS", .serialized)
struct RaftClusterTests {
    final class Replica: Sendable {
        let name: String
        let directory: String
        let identity: StorageIdentity
        let material: TLSMaterial
        let log = Mutex<DirectoryLog?>(nil)
        let server = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)
        let port = Mutex(0)
        /// One client for the replica's whole life (an AsyncHTTPClient must be shut down, not dropped).
        let peers: PeerClient

        init(name: String, root: String, ca: ClusterCertificates.Issued) throws {
            self.name = name
            self.directory = "\(root)/\(name)"
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
            self.identity = try StorageIdentity.load(stateDirectory: self.directory)
            let node = try ClusterCertificates.makeNode(nodeID: name, hosts: ["127.0.0.1"], ca: ca)
            try ClusterCertificates.write(ca, name: "ca", directory: self.directory)
            try ClusterCertificates.write(node, name: "node", directory: self.directory)
            self.material = try TLSMaterial(
                caPath: "\(self.directory)/ca.pem",
                certificatePath: "\(self.directory)/node.pem",
                keyPath: "\(self.directory)/node-key.pem"
            )
            self.peers = PeerClient(tls: self.material)
        }

        var current: DirectoryLog? { self.log.withLock { $0 } }

        /// The peer listener: only the raft routes, as PeerRoutes registers them.
        func listen(on port: Int = 0) async throws {
            let router = Router(context: NodeRequestContext.self)
            router.post("/_peer/v1/raft") { request, context -> Response in
                guard let log = self.current else { throw NodeError.notFound("this replica is down") }
                return try await RaftTransport.serve(request, log: log, sender: context.peerIdentities)
            }
            router.post("/_peer/v1/raft/propose") { request, _ -> Response in
                guard let log = self.current else { throw NodeError.notFound("this replica is down") }
                return try await RaftTransport.serveProposal(request, log: log)
            }
            let bound = AsyncStream.makeStream(of: Int.self)
            let application = Application(
                router: router,
                server: .mutualTLS(HTTP1Channel.Configuration(), material: self.material),
                configuration: .init(address: .hostname("127.0.0.1", port: port)),
                onServerRunning: { channel in
                    bound.continuation.yield(channel.localAddress?.port ?? 0)
                    bound.continuation.finish()
                },
                logger: RaftClusterTests.logger
            )
            let group = ServiceGroup(services: [application], logger: RaftClusterTests.logger)
            let task = Task { try await group.run() }
            self.server.withLock { $0 = (group, task) }
            for await port in bound.stream { self.port.withLock { $0 = port } }
        }

        func open(voters: [ReplicaID], peers: [Replica]) async throws {
            let log = try DirectoryLog(
                stateDirectory: self.directory,
                identity: self.identity,
                metrics: NodeMetrics(),
                logger: RaftClusterTests.logger,
                // Compacted often, so the replica that comes back is behind the cut and must be
                // sent a snapshot of the directory.
                compaction: .init(threshold: 6),
                bootstrapVoters: voters
            )
            let transport = RaftTransport(peers: self.peers, clusterID: log.clusterID, logger: RaftClusterTests.logger)
            for peer in peers where peer !== self {
                transport.setAddress("127.0.0.1:\(peer.port.withLock { $0 })", for: peer.identity.replicaID)
            }
            log.connect(transport)
            self.log.withLock { $0 = log }
            try await log.start()
        }

        /// Like a SIGKILL as far as the others can tell: the listener and the clock stop.
        func crash() async {
            self.current?.stop()
            self.log.withLock { $0 = nil }
            if let server = self.server.withLock({ $0 }) {
                server.task.cancel()
                _ = try? await server.task.value
            }
        }
    }

    static var logger: Logger {
        var logger = Logger(label: "raft-test")
        logger.logLevel = .critical
        return logger
    }

    /// Polls `condition` every 50 ms for up to `seconds`.
    static func eventually(_ seconds: Double = 15, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    static func leader(_ replicas: [Replica]) -> Replica? {
        replicas.first { $0.current?.status.role == .leader }
    }

    /// Three replicas under `root`, listening and open, founded together as voters.
    static func three(root: String) async throws -> [Replica] {
        let ca = try ClusterCertificates.makeCA()
        let replicas = try ["n1", "n2", "n3"].map { try Replica(name: $0, root: root, ca: ca) }
        for replica in replicas { try await replica.listen() }
        let voters = replicas.map(\.identity.replicaID)
        for replica in replicas { try await replica.open(voters: voters, peers: replicas) }
        return replicas
    }

    @Test func threeReplicasElectReplicateFailOverAndCatchUp() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let replicas = try await Self.three(root: root)
        let voters = replicas.map(\.identity.replicaID)
        #expect(Set(replicas.map { $0.current!.clusterID }).count == 1, "founders agree on the cluster id")

        #expect(await Self.eventually { Self.leader(replicas) != nil }, "a leader is elected")
        let first = try #require(Self.leader(replicas))
        var commands: [DirectoryCommand] = []
        for replica in replicas {
            commands += [
                .joinMember(id: replica.name, storageID: replica.identity.storageID, zone: ""),
                .activateMember(id: replica.name, storageID: replica.identity.storageID),
            ]
        }
        #expect(try await first.current!.propose(commands).allSatisfy { $0 == .applied })
        for batch in 0..<3 {
            let creates = (0..<10).map { index in
                DirectoryCommand.createNamespace(
                    name: "ns-\(batch)-\(index)",
                    owner: replicas[index % 3].name,
                    origin: .auto,
                    locked: false,
                    ttlMilliseconds: nil,
                    createdAt: 1
                )
            }
            #expect(try await first.current!.propose(creates).allSatisfy { $0 == .applied })
        }
        #expect(
            await Self.eventually {
                replicas.allSatisfy { $0.current?.read(\.namespaceCount) == 30 }
            },
            "every replica applied the creates"
        )
        // The same members, counts and position, and the same rows (a replica applying a batch
        // holds that batch's rows in memory for a moment, so the rows are compared as persisted).
        #expect(
            await Self.eventually {
                let states = replicas.map { $0.current!.read(\.unloaded) }
                let rows = replicas.map { try? $0.current!.page(after: nil, limit: nil) }
                return states.allSatisfy { $0 == states[0] } && rows.allSatisfy { $0 != nil && $0 == rows[0] }
            },
            "the replicas hold the same directory"
        )

        // A member that does not lead forwards its proposal to the leader and answers once it has
        // applied the entry itself; refusals travel back the same way.
        let follower = try #require(replicas.first { $0 !== first })
        let viaFollower = DirectoryCommand.createNamespace(
            name: "via-follower",
            owner: follower.name,
            origin: .explicit,
            locked: false,
            ttlMilliseconds: nil,
            createdAt: 1
        )
        #expect(try await follower.current!.propose([viaFollower]) == [.applied])
        #expect(follower.current!.entry("via-follower") != nil)
        #expect(try await follower.current!.propose([viaFollower]) == [.refused(.namespaceExists(.active))])
        // A forwarded proposal of another cluster is refused.
        let (foreign, _) = try await follower.peers.call(
            .POST,
            "127.0.0.1:\(first.port.withLock { $0 })",
            RaftTransport.proposePath,
            headers: [(RaftTransport.clusterHeader, "another-cluster")],
            answer: [String: String].self
        )
        #expect(foreign == 412)

        // The leader is lost: the other two elect a new one and go on.
        let lostAt = first.current!.status.appliedIndex
        await first.crash()
        let survivors = replicas.filter { $0 !== first }
        #expect(await Self.eventually { Self.leader(survivors) != nil }, "a new leader among the survivors")
        let second = try #require(Self.leader(survivors))
        var created = false
        for _ in 0..<20 where !created {
            do {
                let outcomes = try await second.current!.propose([
                    .createNamespace(
                        name: "after-failover",
                        owner: second.name,
                        origin: .explicit,
                        locked: true,
                        ttlMilliseconds: nil,
                        createdAt: 2
                    )
                ])
                created = outcomes == [.applied]
            } catch {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(created, "creates commit with one of three replicas down")
        for index in 0..<10 {
            let outcomes = try await second.current!.propose([
                .createNamespace(
                    name: "later-\(index)",
                    owner: second.name,
                    origin: .auto,
                    locked: false,
                    ttlMilliseconds: nil,
                    createdAt: 3
                )
            ])
            #expect(outcomes == [.applied])
        }
        let cut = try RaftStore(directory: second.directory).load()?.snapshot.metadata.index ?? 0
        #expect(cut > lostAt, "the log was compacted past the lost replica")

        // The lost replica comes back from its disk, on the same port, and catches up.
        try await first.listen(on: first.port.withLock { $0 })
        try await first.open(voters: voters, peers: replicas)
        #expect(
            await Self.eventually {
                first.current.map { $0.entry("later-9") != nil && $0.read(\.namespaceCount) == 42 } == true
            },
            "the restarted replica caught up through a snapshot"
        )
        let caughtUp = try first.current!.page(after: nil, limit: nil)
        #expect(caughtUp == (try second.current!.page(after: nil, limit: nil)))
        // Another cluster's stream is refused before any frame is read.
        let (status, _) = try await second.peers.call(
            .POST,
            "127.0.0.1:\(first.port.withLock { $0 })",
            RaftTransport.path,
            headers: [(RaftTransport.clusterHeader, "another-cluster")],
            answer: [String: String].self
        )
        #expect(status == 412)
        for replica in replicas {
            await replica.crash()
            await replica.peers.shutdown()
        }
    }

    /// An entry of a format no replica knows halts all three; the leader hands leadership on once,
    /// and so does each replica after it, so leadership does not circle among halted replicas.
    /// (With a replica that knows the format, that one would keep it.)
    @Test func haltedLeadersHandLeadershipOnOnceEach() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let replicas = try await Self.three(root: root)
        #expect(await Self.eventually { Self.leader(replicas) != nil }, "a leader is elected")
        let first = try #require(Self.leader(replicas))
        let startTerm = first.current!.status.term
        let unknown = DirectoryCodec.encode(DirectoryBatch(format: DirectoryState.supportedFormat + 7, commands: []))
        _ = await first.current!.proposeLocally(unknown)
        #expect(
            await Self.eventually { replicas.allSatisfy { $0.current?.read { $0.haltedAt } != nil } },
            "every replica halted at the entry"
        )
        // (All three are halted here, so leadership may come back to the first one in the end.)
        #expect(
            await Self.eventually { replicas.allSatisfy { ($0.current?.status.term ?? 0) > startTerm } },
            "the halted leader handed leadership on (a new term)"
        )
        // Each hands it on at most once: after that, leadership settles on a (halted) replica.
        try await Task.sleep(for: .seconds(6))
        // One term per hand-off (three at most), with slack for a transfer that timed out.
        let terms = replicas.compactMap { $0.current?.status.term }
        #expect(terms.allSatisfy { $0 <= startTerm + 5 }, "terms \(terms) from \(startTerm)")
        let settled = Self.leader(replicas)
        try await Task.sleep(for: .seconds(3))
        #expect(settled != nil && Self.leader(replicas) === settled, "leadership stopped moving")
        for replica in replicas {
            await replica.crash()
            await replica.peers.shutdown()
        }
    }

    /// An inbound raft stream that carries nothing does not hold up the listener's graceful
    /// shutdown (it used to, until the connection's idle timeout).
    @Test func anIdleInboundStreamEndsOnAGracefulShutdown() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = try ClusterCertificates.makeCA()
        let (a, b) = (try Replica(name: "n1", root: root, ca: ca), try Replica(name: "n2", root: root, ca: ca))
        try await a.listen()
        try await a.open(voters: [a.identity.replicaID], peers: [a])
        var request = HTTPClientRequest(
            url: b.peers.baseURL("127.0.0.1:\(a.port.withLock { $0 })") + RaftTransport.path
        )
        request.method = .POST
        request.headers.add(name: PeerProtocol.header.rawName, value: String(PeerProtocol.version))
        request.headers.add(name: RaftTransport.clusterHeader, value: a.current!.clusterID)
        let (silence, keepOpen) = AsyncStream.makeStream(of: ByteBuffer.self)
        request.body = .stream(silence, length: .unknown)
        let client = b.peers.client
        let stream = Task { try? await client.execute(request, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(300))
        let server = try #require(a.server.withLock { $0 })
        await server.group.triggerGracefulShutdown()
        let stopped = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = try? await server.task.value
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return false
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        #expect(stopped, "the listener's graceful shutdown waited for an idle raft stream")
        keepOpen.finish()
        stream.cancel()
        a.current?.stop()
        await a.peers.shutdown()
        await b.peers.shutdown()
    }
}
