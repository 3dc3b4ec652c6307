import HTTPTypes

/// The protocol nodes speak on their peer listeners. Every peer request carries its version in
/// `x-turso-peer-protocol`; a node answers a version it cannot speak with 400 `PEER_PROTOCOL`
/// rather than misread it, so a rolling upgrade that changes a message raises the version.
enum PeerProtocol {
    /// What this build speaks and sends.
    static let version = 1
    /// What this build understands; a request without the header is from a build before versions (1).
    static let supported = 1...1
    static let header = HTTPField.Name("x-turso-peer-protocol")!
}

/// `GET /_peer/v1/status`.
struct PeerStatus: Codable, Sendable {
    var id: String
    var namespaces: Int
    var running: Int
}

/// `GET /_peer/v1/namespaces`: the namespaces a member holds, as the admin API describes them.
struct PeerNamespaces: Codable, Sendable {
    var namespaces: [NamespaceInfo]
}

/// `GET /_peer/v1/namespaces/:name/held`.
struct HeldAnswer: Codable, Sendable {
    var held: Bool
}

/// `POST /_peer/v1/namespaces/:name/claim`: what a member answers the owner asking for a namespace.
struct ClaimAnswer: Codable, Sendable, Equatable {
    enum State: String, Codable, Sendable {
        /// It holds the namespace (or a handoff of it is unresolved) and keeps it; `owner` is who it
        /// thinks owns it.
        case held
        /// It does not hold the namespace.
        case absent
        /// It handed the namespace to the claimer.
        case handedOff = "handed-off"
    }

    var state: State
    var owner: String?
}

/// `POST /_peer/v1/namespaces/:name/precopy`: copy the namespace's files from `from` while it serves.
struct PrecopyRequest: Codable, Sendable {
    var from: String
}

struct PrecopyAnswer: Codable, Sendable {
    var copied: Int
}

/// `POST /_peer/v1/namespaces/:name/commit`: the sealed namespace's metadata and the digests of its
/// final files; the target copies the tail from `from`, verifies and registers it.
struct CommitRequest: Codable, Sendable {
    var from: String
    var record: NamespaceRecord
    var db: NamespaceFiles.Digest
    var wal: NamespaceFiles.Digest
    /// Absent from a sender that predates the change history: the target then starts a new history
    /// (its clients resync once).
    var history: NamespaceFiles.Digest?

    func digest(_ kind: NamespaceFiles.Kind) -> NamespaceFiles.Digest? {
        switch kind {
        case .db: self.db
        case .wal: self.wal
        case .history: self.history
        }
    }
}
