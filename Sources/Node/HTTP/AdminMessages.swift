import Consensus
import Directory

/// A namespace as the admin API describes it. `ttl`,
/// `expiresAt` and `owner` are written as null when unset; `port` and `pid` only while it runs;
/// `storage` only when one namespace is described (lists stay cheap).
struct NamespaceInfo: Codable, Sendable {
    var name: String
    var origin: String
    var locked: Bool
    var ttl: String?
    var createdAt: String
    /// Known only to the member that holds it (null for another member's namespace in a list).
    var lastAccessAt: String?
    var expiresAt: String?
    var owner: String?
    var holder: String
    /// The followers: members keeping a copy besides the owner.
    var replicas: [String]
    /// running, dormant, starting, stopping or restarting; in a clustered node's list, `remote`
    /// (or `archiving`) for a namespace another member holds.
    var state: String
    var running: Bool
    var port: Int?
    var pid: Int?
    var storage: Storage?
    /// Only when one namespace is described, from a cluster log.
    var replication: Replication?

    /// The replica set as the directory records it.
    struct Replication: Codable, Sendable, Equatable {
        var epoch: UInt64
        var followers: [String]
        /// The in-sync set: the owner and its in-sync followers.
        var isr: [String]
        var isrVersion: UInt64
        /// On the owner: each follower's WAL lag in bytes as last acknowledged (null: not known, or
        /// its copy is of another WAL generation and is being caught up).
        var lagBytes: [String: Int?]?

        init(_ entry: NamespaceEntry, lagBytes: [String: Int?]? = nil) {
            self.epoch = entry.epoch
            self.followers = entry.followers
            self.isr = entry.isr
            self.isrVersion = entry.isrVersion
            self.lagBytes = lagBytes
        }
    }

    /// The namespace's files on this node, in bytes.
    struct Storage: Codable, Sendable, Equatable {
        var databaseBytes: Int
        var walBytes: Int
        var historyBytes: Int
    }

    enum CodingKeys: String, CodingKey {
        case name, origin, locked, ttl, createdAt, lastAccessAt, expiresAt, owner, holder, replicas, state, running
        case port, pid, storage, replication
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.origin, forKey: .origin)
        try container.encode(self.locked, forKey: .locked)
        try container.encode(self.ttl, forKey: .ttl)
        try container.encode(self.createdAt, forKey: .createdAt)
        try container.encode(self.lastAccessAt, forKey: .lastAccessAt)
        try container.encode(self.expiresAt, forKey: .expiresAt)
        try container.encode(self.owner, forKey: .owner)
        try container.encode(self.holder, forKey: .holder)
        try container.encode(self.replicas, forKey: .replicas)
        try container.encode(self.state, forKey: .state)
        try container.encode(self.running, forKey: .running)
        try container.encodeIfPresent(self.port, forKey: .port)
        try container.encodeIfPresent(self.pid, forKey: .pid)
        try container.encodeIfPresent(self.storage, forKey: .storage)
        try container.encodeIfPresent(self.replication, forKey: .replication)
    }
}

/// `GET /v1/namespaces`. With `limit`, `next` is the name to pass as `after` for the following page
/// (absent on the last).
struct NamespaceList: Codable, Sendable {
    var namespaces: [NamespaceInfo]
    var next: String?
}

/// One member in `GET /v1/cluster/members`. A one-node deployment reports its admin address and
/// running backends; a clustered node reports every member's gossip and peer addresses, weight and
/// version, and `namespaces` as null for a member that did not answer.
struct MemberInfo: Codable, Sendable {
    var id: String
    var gossipAddress: String?
    var peerAddress: String?
    var dataAddress: String
    var adminAddress: String?
    var zone: String
    var weight: Int?
    var version: String?
    var state: String
    var liveness: String
    var incarnation: UInt64
    var namespaces: Int?
    var running: Int?
    var isSelf: Bool
    /// The member's part in the cluster log, where this node knows it: voter or learner, whether it
    /// leads, and (for this node) its term, commit and applied index.
    var role: String?
    var leader: Bool?
    var term: UInt64?
    var commitIndex: UInt64?
    var appliedIndex: UInt64?
    /// For this node: the directory format the log has raised the rules to.
    var directoryFormat: UInt32?
    /// The member's data directory identity and the cluster log it belongs to, as gossip shows them.
    var storageId: String?
    var clusterId: String?

    enum CodingKeys: String, CodingKey {
        case id, gossipAddress, peerAddress, dataAddress, adminAddress, zone, weight, version, state, liveness
        case incarnation, namespaces, running, role, leader, term, commitIndex, appliedIndex, directoryFormat
        case storageId, clusterId
        case isSelf = "self"
    }

    /// Fills the log fields from this node's replica of the log: the member's role in its
    /// configuration (voter, learner, or none yet), whether it leads, and for this node itself its
    /// term, commit and applied index.
    mutating func describeLog(_ status: DirectoryLog.Status, replica: ReplicaID, isSelf: Bool = true) {
        self.role =
            status.voters.contains(replica) ? "voter" : status.learners.contains(replica) ? "learner" : "none"
        self.leader = status.leader == replica
        guard isSelf else { return }
        self.term = status.term
        self.commitIndex = status.commitIndex
        self.appliedIndex = status.appliedIndex
        self.directoryFormat = status.directoryFormat
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encodeIfPresent(self.gossipAddress, forKey: .gossipAddress)
        try container.encodeIfPresent(self.peerAddress, forKey: .peerAddress)
        try container.encode(self.dataAddress, forKey: .dataAddress)
        try container.encodeIfPresent(self.adminAddress, forKey: .adminAddress)
        try container.encode(self.zone, forKey: .zone)
        try container.encodeIfPresent(self.weight, forKey: .weight)
        try container.encodeIfPresent(self.version, forKey: .version)
        try container.encode(self.state, forKey: .state)
        try container.encode(self.liveness, forKey: .liveness)
        try container.encode(self.incarnation, forKey: .incarnation)
        try container.encode(self.namespaces, forKey: .namespaces)
        try container.encodeIfPresent(self.running, forKey: .running)
        try container.encode(self.isSelf, forKey: .isSelf)
        try container.encodeIfPresent(self.role, forKey: .role)
        try container.encodeIfPresent(self.leader, forKey: .leader)
        try container.encodeIfPresent(self.term, forKey: .term)
        try container.encodeIfPresent(self.commitIndex, forKey: .commitIndex)
        try container.encodeIfPresent(self.appliedIndex, forKey: .appliedIndex)
        try container.encodeIfPresent(self.directoryFormat, forKey: .directoryFormat)
        try container.encodeIfPresent(self.storageId, forKey: .storageId)
        try container.encodeIfPresent(self.clusterId, forKey: .clusterId)
    }
}

struct MemberList: Codable, Sendable {
    var members: [MemberInfo]
}

/// `/healthz`, `/readyz` and `POST /v1/cluster/leave` (with the node's id).
struct StatusBody: Codable, Sendable {
    var status: String
    var id: String?
}

/// `POST /v1/cluster/members/:id/forget`.
/// `POST /v1/cluster/members/:id/remove`.
struct RemovedMember: Codable, Sendable {
    var id: String
    var storageId: String
    var state: String
}

/// `DELETE /v1/namespaces/:name`.
struct ArchivedNamespace: Codable, Sendable {
    var name: String
    var archived: Bool
    var archive: String
}

/// The body of every error answer: `{"error":{"message","code"}}`, plus `owner` when the error is
/// about reaching the member that owns the namespace.
struct ErrorBody: Codable, Sendable {
    struct Detail: Codable, Sendable {
        var message: String
        var code: String
        var owner: String?
    }

    var error: Detail
}

/// A hand-written encoder for the namespace list, byte for byte what `HTTPHelpers.json` (sorted keys,
/// unescaped slashes) writes: Foundation's encoder took about 1 s for 100,000 namespaces.
extension NamespaceList {
    var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + self.namespaces.count * 240)
        out += Array("{\"namespaces\":[".utf8)
        for (index, item) in self.namespaces.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            item.writeJSON(into: &out)
        }
        out.append(UInt8(ascii: "]"))
        if let next = self.next {
            out += Array(",\"next\":".utf8)
            JSONText.string(next, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

extension NamespaceInfo {
    /// Keys in sorted order, as `JSONEncoder` with `.sortedKeys` writes them.
    func writeJSON(into out: inout [UInt8]) {
        func key(_ name: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            JSONText.string(name, into: &out)
            out.append(UInt8(ascii: ":"))
        }
        func optional(_ value: String?) {
            if let value { JSONText.string(value, into: &out) } else { out += Array("null".utf8) }
        }
        out.append(UInt8(ascii: "{"))
        key("createdAt", first: true)
        JSONText.string(self.createdAt, into: &out)
        key("expiresAt")
        optional(self.expiresAt)
        key("holder")
        JSONText.string(self.holder, into: &out)
        key("lastAccessAt")
        optional(self.lastAccessAt)
        key("locked")
        out += Array((self.locked ? "true" : "false").utf8)
        key("name")
        JSONText.string(self.name, into: &out)
        key("origin")
        JSONText.string(self.origin, into: &out)
        key("owner")
        optional(self.owner)
        if let pid = self.pid {
            key("pid")
            out += Array(String(pid).utf8)
        }
        if let port = self.port {
            key("port")
            out += Array(String(port).utf8)
        }
        key("replicas")
        out.append(UInt8(ascii: "["))
        for (index, replica) in self.replicas.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONText.string(replica, into: &out)
        }
        out.append(UInt8(ascii: "]"))
        key("running")
        out += Array((self.running ? "true" : "false").utf8)
        key("state")
        JSONText.string(self.state, into: &out)
        key("ttl")
        optional(self.ttl)
        out.append(UInt8(ascii: "}"))
    }
}

/// JSON string literals: quotes, backslashes and control characters escaped as JSONEncoder does
/// (slashes left alone).
enum JSONText {
    static func string(_ value: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0a: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0d: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0c: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension NamespaceInfo {
    /// Another member's namespace, as the directory describes it: its process and access time are
    /// that member's to tell (`GET /v1/namespaces/:name` is forwarded to it).
    init(remote entry: NamespaceEntry) {
        let record = NamespaceRecord(entry)
        self.init(
            name: entry.name,
            origin: record.origin.rawValue,
            locked: entry.locked,
            ttl: record.ttlSeconds.map(GoDuration.format),
            createdAt: HTTPHelpers.iso8601(record.createdAt),
            lastAccessAt: nil,
            expiresAt: nil,
            owner: entry.owner,
            holder: entry.owner,
            replicas: entry.followers,
            state: entry.state == .archiving ? "archiving" : "remote",
            running: false
        )
    }
}
