import HTTPTypes

/// The protocol nodes speak on their peer listeners. Every peer request carries its version in
/// `x-turso-peer-protocol`; a node answers a version it cannot speak with 400 `PEER_PROTOCOL`
/// rather than misread it, so a rolling upgrade that changes a message raises the version.
enum PeerProtocol {
    /// What this build speaks and sends.
    /// 2: moves through the cluster log (`transfer`); claims, `held` and `commit` are gone.
    static let version = 2
    /// What this build understands (a build before the cluster log's moves cannot take part).
    static let supported = 2...2
    static let header = HTTPField.Name("x-turso-peer-protocol")!
}

/// `GET /_peer/v1/status`.
struct PeerStatus: Codable, Sendable {
    var id: String
    var namespaces: Int
    var running: Int
}

/// `POST /_peer/v1/namespaces/:name/precopy`: copy the namespace's files from `from` while it serves.
struct PrecopyRequest: Codable, Sendable {
    var from: String
}

struct PrecopyAnswer: Codable, Sendable {
    var copied: Int
}

/// `POST /_peer/v1/namespaces/:name/transfer`: the owner sealed the namespace and asks the target
/// to stage its final files (described by their digests) as version (createdAt, epoch); the target
/// copies the tail from `from`, verifies and labels its staging, or refuses (409).
struct TransferRequest: Codable, Sendable {
    var from: String
    var createdAt: UInt64
    var epoch: UInt64
    var db: NamespaceFiles.Digest
    var wal: NamespaceFiles.Digest
    var history: NamespaceFiles.Digest?

    /// The digests to check, each valid.
    func digests() throws(NodeError) -> [NamespaceFiles.Kind: NamespaceFiles.Digest] {
        var digests: [NamespaceFiles.Kind: NamespaceFiles.Digest] = [.db: self.db, .wal: self.wal]
        digests[.history] = self.history
        for (kind, digest) in digests where digest.size < 0 || digest.sha256.utf8.count != 64 {
            throw .badRequest("transfer needs a valid \(kind.rawValue) digest")
        }
        return digests
    }
}

struct TransferAnswer: Codable, Sendable {
    var staged: Bool
}
