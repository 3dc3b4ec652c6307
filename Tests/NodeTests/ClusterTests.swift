import Foundation
import Membership
import Testing

@testable import Node

private func member(
    _ id: String,
    _ status: MemberStatus = .alive,
    _ lifecycle: MemberLifecycle = .active
) -> MemberState {
    MemberState(
        metadata: MemberMetadata(
            id: NodeID(id),
            gossipAddress: "\(id):7946",
            peerAddress: "\(id):8082",
            lifecycle: lifecycle
        ),
        status: status,
        incarnation: Incarnation(1)
    )
}

@Suite("Cluster view")
struct ClusterViewTests {
    let names = (0..<200).map { "ns\($0)" }

    @Test func everyNodeAgreesOnEveryOwner() {
        let members = [member("a"), member("b"), member("c")]
        let views = ["a", "b", "c"].map { ClusterView(selfID: $0, members: members.shuffled()) }
        for name in self.names {
            let owners = Set(views.map { $0.owner(of: name)?.id.rawValue })
            #expect(owners.count == 1)
            #expect(views.filter { $0.isOwner(name) }.count == 1)
        }
    }

    @Test func routesByOwnership() {
        let members = [member("a"), member("b"), member("c")]
        let view = ClusterView(selfID: "a", members: members)
        for name in self.names {
            let owner = view.owner(of: name)!
            if owner.id.rawValue == "a" {
                #expect(view.route(name, forwarded: false) == .owner)
                #expect(view.route(name, forwarded: true) == .owner)
            } else {
                #expect(view.route(name, forwarded: false) == .forward(owner))
                // A forwarded request is never forwarded again.
                #expect(view.route(name, forwarded: true) == .misdirected(owner))
            }
        }
    }

    @Test func deadOwnersKeepTheirNamespaces() {
        let alive = ClusterView(selfID: "a", members: [member("a"), member("b"), member("c")])
        let bDead = ClusterView(selfID: "a", members: [member("a"), member("b", .dead), member("c")])
        for name in self.names {
            #expect(alive.owner(of: name)?.id == bDead.owner(of: name)?.id)
            if bDead.owner(of: name)?.id.rawValue == "b" {
                #expect(bDead.route(name, forwarded: false) == .ownerDown(bDead.owner(of: name)!))
            }
        }
    }

    /// With a cluster log, only members the directory has active, under the storage id gossip
    /// shows, are placed: not one unregistered yet, removed, or back with another disk.
    @Test func onlyMembersActiveInTheDirectoryArePlaced() {
        func stored(_ id: String, _ storage: String) -> MemberState {
            var state = member(id)
            state.metadata.storageID = storage
            return state
        }
        let members = [stored("a", "s1"), stored("b", "s2"), stored("c", "s3"), stored("d", "s9")]
        let view = ClusterView(selfID: "a", members: members, registered: ["a": "s1", "b": "s2", "d": "s4"])
        let owners = Set(self.names.compactMap { view.owner(of: $0)?.id.rawValue })
        #expect(owners == ["a", "b"])
        // Without a log, gossip alone decides.
        #expect(
            Set(self.names.compactMap { ClusterView(selfID: "a", members: members).owner(of: $0)?.id.rawValue }).count
                == 4
        )
    }

    @Test func joiningAndLeavingMembersOwnNothing() {
        let members = [member("a"), member("b", .alive, .joining), member("c", .alive, .leaving), member("d", .left)]
        let view = ClusterView(selfID: "b", members: members)
        for name in self.names { #expect(view.owner(of: name)?.id.rawValue == "a") }
        // A joining node can see what it will own once active.
        let future = ClusterView(selfID: "b", members: members, treatSelfAsActive: true)
        #expect(self.names.contains { future.isOwner($0) })
        #expect(view.others.map(\.id.rawValue).sorted() == ["a", "c"])
    }

    @Test func aJoinMovesOnlyTheNewMembersShare() {
        let before = ClusterView(selfID: "a", members: [member("a"), member("b"), member("c")])
        let after = ClusterView(selfID: "a", members: [member("a"), member("b"), member("c"), member("d")])
        for name in self.names where before.owner(of: name)?.id != after.owner(of: name)?.id {
            #expect(after.owner(of: name)?.id.rawValue == "d")
        }
    }

    @Test func noActiveMemberMeansNoOwner() {
        let view = ClusterView(selfID: "a", members: [member("a", .alive, .joining)])
        #expect(view.route("x", forwarded: false) == .noOwner)
        #expect(ClusterView.single(selfID: "solo").route("x", forwarded: false) == .owner)
    }
}

@Suite("Cluster configuration")
struct ClusterConfigurationTests {
    @Test func noClusterSettingsMeansOneNode() throws {
        let configuration = try NodeConfiguration(environment: [:])
        #expect(!configuration.isClustered)
    }

    @Test func joinWithTLSFilesOrTheInsecureFlag() throws {
        let tls = ["TURSO_TLS_CA": "/ca.pem", "TURSO_TLS_CERT": "/n.pem", "TURSO_TLS_KEY": "/n-key.pem"]
        let joined = try NodeConfiguration(
            environment: tls.merging(["TURSO_JOIN": "10.0.0.1:7946, turso-headless.db.svc:7946"]) { $1 }
        )
        #expect(joined.isClustered)
        #expect(joined.join == ["10.0.0.1:7946", "turso-headless.db.svc:7946"])
        let seed = try NodeConfiguration(environment: tls)
        #expect(seed.isClustered && seed.join.isEmpty)
        let insecure = try NodeConfiguration(environment: ["TURSO_JOIN": "a:1", "TURSO_INSECURE_CLUSTER": "true"])
        #expect(insecure.isClustered && insecure.tlsCA.isEmpty)
    }

    @Test(arguments: [
        ["TURSO_JOIN": "10.0.0.1:7946"],
        ["TURSO_TLS_CA": "/ca.pem"],
        ["TURSO_INSECURE_CLUSTER": "true", "TURSO_JOIN": "nohost"],
        ["TURSO_INSECURE_CLUSTER": "true", "TURSO_PEER_ADDR": ":8080"],
        ["TURSO_INSECURE_CLUSTER": "true", "TURSO_GOSSIP_ADDR": ":9100"],
        ["TURSO_INSECURE_CLUSTER": "true", "TURSO_REPLICAS": "0"],
        ["TURSO_INSECURE_CLUSTER": "true", "TURSO_MEMBERSHIP_PRESET": "fast"],
        ["TURSO_INSECURE_CLUSTER": "maybe"],
    ])
    func rejects(_ environment: [String: String]) {
        #expect(throws: NodeError.self) { try NodeConfiguration(environment: environment) }
    }
}

@Suite("Namespace files")
struct NamespaceFilesTests {
    @Test func digestsAndStagedInstall() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("files-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var configuration = NodeConfiguration()
        configuration.dataDirectory = root
        try FileManager.default.createDirectory(
            atPath: configuration.archiveDirectory,
            withIntermediateDirectories: true
        )
        let files = NamespaceFiles(configuration: configuration)
        let empty = try NamespaceFiles.digest(root + "/missing")
        #expect(empty.size == 0)
        #expect(empty.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // Staging appends (a tail after a prefix) and install moves the files into place.
        for (kind, parts) in [(NamespaceFiles.Kind.db, ["hello ", "world"]), (.wal, ["frames"])] {
            for part in parts {
                let handle = try files.openStaging("n", kind, truncate: false)
                try handle.write(contentsOf: Data(part.utf8))
                try handle.close()
            }
        }
        #expect(try NamespaceFiles.digest(files.stagingPath("n", .db)).size == 11)
        #expect(try NamespaceFiles.digest(files.stagingPath("n", .db), length: 5).size == 5)
        // A label names the version the staged copy becomes; installing moves the files into
        // place (an empty staged history removes the live one) and survives being repeated.
        try files.markStaged("n", .init(createdAt: 7, epoch: 2))
        #expect(files.stagedVersion("n") == .init(createdAt: 7, epoch: 2))
        #expect(files.stagedVersions() == ["n": .init(createdAt: 7, epoch: 2)])
        try Data("stale".utf8).write(to: URL(fileURLWithPath: files.livePath("n", .db)))
        try Data("old history".utf8).write(to: URL(fileURLWithPath: files.livePath("n", .history)))
        _ = try files.openStaging("n", .history, truncate: true)
        try files.installStaged("n")
        try files.installStaged("n")
        #expect(try String(contentsOfFile: files.livePath("n", .db), encoding: .utf8) == "hello world")
        #expect(try String(contentsOfFile: files.livePath("n", .wal), encoding: .utf8) == "frames")
        #expect(!FileManager.default.fileExists(atPath: files.livePath("n", .history)))
        #expect(!FileManager.default.fileExists(atPath: files.stagingPath("n", .db)))
        files.discardStaging("n")
        #expect(files.stagedVersion("n") == nil)
        files.removeLive("n")
        #expect(!FileManager.default.fileExists(atPath: files.livePath("n", .db)))
    }
}
