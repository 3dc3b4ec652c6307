import Consensus
import Crypto
import Foundation

/// The identity of this node's data directory: a UUID written once, when the directory is first used.
/// A member is (node id, storage id), so a node that comes back with a wiped disk and its old id is
/// not taken for its old self; its Raft replica id is derived from the storage id for the same reason.
struct StorageIdentity: Sendable, Equatable {
    let storageID: String

    /// The Raft replica id: the first 8 bytes of SHA-256(storage id), never 0 (0 means "none" to Raft
    /// implementations and in logs).
    var replicaID: ReplicaID {
        let digest = Array(SHA256.hash(data: Data(self.storageID.utf8)))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return ReplicaID(value == 0 ? 1 : value)
    }

    /// Reads `<state>/storage-id`, creating it (fsynced, with its directory) on first use.
    static func load(stateDirectory: String) throws(NodeError) -> StorageIdentity {
        let path = stateDirectory + "/storage-id"
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard UUID(uuidString: text) != nil else {
                throw NodeError(.stateUnreadable, "\(path) does not hold a storage id (a UUID): '\(text.prefix(64))'")
            }
            return StorageIdentity(storageID: text.lowercased())
        }
        let identity = StorageIdentity(storageID: UUID().uuidString.lowercased())
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
            let temporary = path + ".tmp"
            try Data((identity.storageID + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
            try handle.synchronize()
            try handle.close()
            guard rename(temporary, path) == 0 else { throw NodeError.io("rename failed: errno \(errno)") }
        } catch {
            throw NodeError.io("cannot write the storage id \(path): \(error)")
        }
        NamespaceFiles.syncDirectory(stateDirectory)
        return identity
    }
}
