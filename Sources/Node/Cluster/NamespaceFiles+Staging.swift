import Foundation
import Ownership

/// Staging as the ownership machine uses it: a copy received for a move is labelled with the
/// version it becomes once the move applies (written and synced after its digests were checked),
/// so a restart knows what it holds and a late copy of another attempt is never taken for it.
extension NamespaceFiles {
    func stagingMarkerPath(_ name: String) -> String { "\(self.stagingRoot)/\(name)/version" }

    /// The version `name`'s staging was verified for, if it was.
    func stagedVersion(_ name: String) -> OwnershipMachine.Version? {
        guard let text = try? String(contentsOfFile: self.stagingMarkerPath(name), encoding: .utf8) else { return nil }
        let parts = text.split(separator: " ").compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard parts.count == 2 else { return nil }
        return OwnershipMachine.Version(createdAt: parts[0], epoch: parts[1])
    }

    /// Every labelled staging.
    func stagedVersions() -> [String: OwnershipMachine.Version] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.stagingRoot)) ?? []
        var staged: [String: OwnershipMachine.Version] = [:]
        for name in names { staged[name] = self.stagedVersion(name) }
        return staged
    }

    /// Labels `name`'s staging as `version` (its files synced first), durably.
    func markStaged(_ name: String, _ version: OwnershipMachine.Version) throws {
        for kind in Kind.allCases {
            guard let handle = FileHandle(forUpdatingAtPath: self.stagingPath(name, kind)) else { continue }
            try handle.synchronize()
            try handle.close()
        }
        let path = self.stagingMarkerPath(name)
        let temporary = path + ".tmp"
        guard
            FileManager.default.createFile(
                atPath: temporary,
                contents: Data("\(version.createdAt) \(version.epoch)\n".utf8)
            )
        else { throw NodeError.io("cannot write \(temporary)") }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
        try handle.synchronize()
        try handle.close()
        // The staged files' entries are durable before the label that vouches for them.
        Self.syncDirectory("\(self.stagingRoot)/\(name)")
        if rename(temporary, path) != 0 { throw NodeError.io("cannot label \(path): errno \(errno)") }
        // The folder's entries (the staged files and the label) and the folder itself.
        Self.syncDirectory("\(self.stagingRoot)/\(name)")
        Self.syncDirectory(self.stagingRoot)
    }

    /// Removes a staging label (a transfer of a newer version starts writing into the folder).
    func unmarkStaged(_ name: String) {
        guard (try? FileManager.default.removeItem(atPath: self.stagingMarkerPath(name))) != nil else { return }
        Self.syncDirectory("\(self.stagingRoot)/\(name)")
    }

    /// Moves labelled staging files into place, synced, replacing whatever is there; an empty WAL or
    /// history removes the live one. Safe to repeat after a crash (what was moved is not there).
    func installStaged(_ name: String) throws {
        let fm = FileManager.default
        // Without a staged database file the label vouches for an install that already moved it;
        // with no live one either, the staged copy was lost: refuse rather than serve it empty.
        guard fm.fileExists(atPath: self.stagingPath(name, .db)) || fm.fileExists(atPath: self.livePath(name, .db))
        else { throw NodeError.io("the staged copy of \(name) has no database file") }
        try? fm.removeItem(atPath: self.configuration.databasePath(name) + "-shm")
        for kind in [Kind.history, .wal, .db] {
            let staged = self.stagingPath(name, kind)
            guard fm.fileExists(atPath: staged) else { continue }
            let live = self.livePath(name, kind)
            if Self.size(staged) == 0 && kind != .db {
                try? fm.removeItem(atPath: live)
                try fm.removeItem(atPath: staged)
                continue
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: staged))
            try handle.synchronize()
            try handle.close()
            if rename(staged, live) != 0 { throw NodeError.io("cannot move \(staged) to \(live): errno \(errno)") }
        }
        Self.syncDirectory(self.configuration.dataDirectory)
    }
}
