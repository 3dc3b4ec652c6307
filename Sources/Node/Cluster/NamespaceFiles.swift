import Crypto
import Foundation

/// A namespace's database file, WAL and change history as they move between nodes: sizes and SHA-256
/// digests, the staging area a receiving node copies into, and the final install.
///
/// Between checkpoints the database file does not change and the WAL and history only grow: a copy
/// taken while the holder serves is usually a prefix of the final files, and the handoff only ships
/// the tail. The digests of the final files decide; a mismatched prefix (a checkpoint ran meanwhile)
/// is copied again whole.
struct NamespaceFiles: Sendable {
    enum Kind: String, CaseIterable, Sendable {
        case db
        case wal
        /// The change history of retired WAL generations (`<db>-history`, built-in backend).
        case history
    }

    /// Every file a namespace may have next to its database file, by suffix.
    static let companionSuffixes = ["-wal", "-shm", "-log", "-history"]

    /// The database file and its companions.
    static func allPaths(databasePath base: String) -> [String] { [base] + Self.companionSuffixes.map { base + $0 } }

    /// Size and SHA-256 (hex) of one file; a missing file is size 0 with the digest of nothing.
    struct Digest: Equatable, Sendable, Codable {
        var size: Int
        var sha256: String
    }

    let configuration: NodeConfiguration

    func livePath(_ name: String, _ kind: Kind) -> String {
        let base = self.configuration.databasePath(name)
        switch kind {
        case .db: return base
        case .wal: return base + "-wal"
        case .history: return base + "-history"
        }
    }

    var stagingRoot: String { self.configuration.stateDirectory + "/incoming" }

    func stagingPath(_ name: String, _ kind: Kind) -> String { "\(self.stagingRoot)/\(name)/\(kind.rawValue)" }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// SHA-256 of the first `length` bytes of `path` (all of it when nil).
    static func digest(_ path: String, length: Int? = nil) throws -> Digest {
        guard FileManager.default.fileExists(atPath: path) else {
            return Digest(size: 0, sha256: SHA256.hash(data: Data()).hex)
        }
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var hasher = SHA256()
        var remaining = length ?? Int.max
        var total = 0
        while remaining > 0 {
            guard let chunk = try handle.read(upToCount: min(1 << 20, remaining)), !chunk.isEmpty else { break }
            hasher.update(data: chunk)
            remaining -= chunk.count
            total += chunk.count
        }
        return Digest(size: total, sha256: hasher.finalize().hex)
    }

    func liveDigests(_ name: String) throws -> [Kind: Digest] {
        var result: [Kind: Digest] = [:]
        for kind in Kind.allCases { result[kind] = try Self.digest(self.livePath(name, kind)) }
        return result
    }

    /// Opens (creating) a staging file for appending.
    func openStaging(_ name: String, _ kind: Kind, truncate: Bool) throws -> FileHandle {
        let path = self.stagingPath(name, kind)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        if truncate || !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        if truncate { try handle.truncate(atOffset: 0) }
        try handle.seekToEnd()
        return handle
    }

    /// Removes `name`'s staging, its label first: a label never outlives the files it describes
    /// (a label without a staged database file means an install already moved it into place).
    func discardStaging(_ name: String) {
        try? FileManager.default.removeItem(atPath: self.stagingMarkerPath(name))
        Self.syncDirectory("\(self.stagingRoot)/\(name)")
        try? FileManager.default.removeItem(atPath: "\(self.stagingRoot)/\(name)")
    }

    /// Deletes a namespace's live files (after it was handed off and the new holder verified them).
    func removeLive(_ name: String) {
        for path in Kind.allCases.map({ self.livePath(name, $0) }) + [self.configuration.databasePath(name) + "-shm"] {
            try? FileManager.default.removeItem(atPath: path)
        }
        Self.syncDirectory(self.configuration.dataDirectory)
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

extension Sequence where Element == UInt8 {
    var hex: String { self.map { String(format: "%02x", $0) }.joined() }
}
