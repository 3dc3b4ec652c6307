import HTTPTypes
import ServerSupport

/// Headers nodes add to requests they pass to each other.
enum ClusterHeaders {
    /// On a request forwarded from an entry node (its id): never forward it again.
    static let forwarded = HTTPField.Name("x-turso-forwarded")!
    /// On a 421/503 answer: the member the answering node believes owns the namespace.
    static let owner = HTTPField.Name("x-turso-owner")!
    /// On a peer call: the calling member's id.
    static let node = HTTPField.Name("x-turso-node")!
    /// On a file download: the file's full size.
    static let fileSize = HTTPField.Name("x-turso-file-size")!
    /// On a database file download: the history position the copy is at least at
    /// (`DatabaseFileDelta.base`), so it can later be brought up to date page by page.
    static let historyBase = HTTPField.Name("x-turso-history-base")!

    /// Headers only nodes may set: dropped from what a client sent before a request is forwarded.
    static let internalNames: Set<String> = [
        forwarded.canonicalName, node.canonicalName, BackendSecret.headerName,
    ]
}
