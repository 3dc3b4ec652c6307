import Foundation
import SyncServer

/// Bringing a lagging copy of a namespace's database file up to date page by page: after a
/// checkpoint the holder's database file changed, and the target copies only the pages the change
/// history says may differ since its copy (`DatabaseFileDelta`) instead of the whole file. The
/// SHA-256 of the result still decides; a whole copy is the fallback.
extension Cluster {
    /// Largest delta answered in one response; beyond it the target copies the whole file.
    static let maxDeltaPages = 16_384

    /// The staged database copy's history base (`<staging>/db.base`).
    func stagedBasePath(_ name: String) -> String { self.files.stagingPath(name, .db) + ".base" }

    /// Records the base of a staged database copy: set when the copy starts from byte 0, kept when
    /// bytes are appended to it (the older base is still a lower bound), removed when unknown.
    func recordStagedBase(_ name: String, base: String?, fromStart: Bool) {
        let path = self.stagedBasePath(name)
        guard fromStart || base == nil else { return }
        if let base, fromStart {
            try? Data(base.utf8).write(to: URL(fileURLWithPath: path))
        } else {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Holder side: `u64 database size` then `u32 page, 4096 bytes` for every page that may differ
    /// from a copy at `since`; 409 when the history does not reach back (the target copies whole).
    func databaseDelta(_ name: String, since: DatabaseFileDelta.Position) async throws(NodeError) -> [UInt8] {
        // A sealed copy (mid-move, no registry record) is what a transfer's delta is read from.
        guard self.service.registry.record(name) != nil || self.service.registry.copy(name) != nil else {
            throw NodeError.notFound("namespace \(name) is not held here")
        }
        let path = self.files.livePath(name, .db)
        return try await BlockingIO.run { () throws(NodeError) -> [UInt8] in
            guard let delta = try Self.readDatabaseDelta(path, since: since) else {
                throw NodeError(
                    .historyUnavailable,
                    "the change history of \(name) does not reach back to \(since)",
                    status: 409
                )
            }
            return delta
        }
    }

    /// The delta of the database file at `path` since `since`; nil when the history does not reach
    /// back, names too many pages, or the pages are not 4 KiB (the delta's unit).
    static func readDatabaseDelta(_ path: String, since: DatabaseFileDelta.Position) throws(NodeError) -> [UInt8]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let header = try? handle.read(upToCount: 18), header.count == 18,
            UInt16(header[16]) << 8 | UInt16(header[17]) == 4096,
            let pages = DatabaseFileDelta.pagesChanged(databasePath: path, since: since),
            pages.count <= Self.maxDeltaPages
        else { return nil }
        let size = NamespaceFiles.size(path)
        var out: [UInt8] = []
        out.reserveCapacity(8 + pages.count * 4100)
        withUnsafeBytes(of: UInt64(size).bigEndian) { out.append(contentsOf: $0) }
        for page in pages where page >= 1 && Int(page - 1) * 4096 < size {
            do {
                try handle.seek(toOffset: UInt64(page - 1) * 4096)
                let bytes = try handle.read(upToCount: 4096) ?? Data()
                withUnsafeBytes(of: page.bigEndian) { out.append(contentsOf: $0) }
                out.append(contentsOf: bytes)
                if bytes.count < 4096 { out.append(contentsOf: [UInt8](repeating: 0, count: 4096 - bytes.count)) }
            } catch {
                throw NodeError.io("cannot read \(path): \(error)")
            }
        }
        return out
    }

    /// Target side: applies the holder's delta to the staged database copy. False when there is no
    /// known base or the holder cannot answer (the caller copies the whole file).
    func catchUpStagedDatabase(_ name: String, from: String) async -> Bool {
        guard let peers, let text = try? String(contentsOfFile: self.stagedBasePath(name), encoding: .utf8),
            let base = DatabaseFileDelta.Position(text)
        else { return false }
        guard let body = try? await peers.fetch(from, "/_peer/v1/namespaces/\(name)/delta?since=\(base)"),
            body.count >= 8, (body.count - 8) % 4100 == 0
        else { return false }
        let path = self.files.stagingPath(name, .db)
        let applied = try? await BlockingIO.run { () throws(NodeError) in
            try Self.applyDatabaseDelta(body[...], to: path)
        }
        if applied != nil {
            self.metrics.handoffBytes.increment(by: Int64(body.count))
            self.logger.info(
                "caught the database copy up from the change history",
                metadata: ["namespace": "\(name)", "handoff.pages": "\((body.count - 8) / 4100)"]
            )
        }
        return applied != nil
    }

    /// Applies a delta (`databaseDelta`'s form) to the database file at `path`: each page written in
    /// place, the file cut to the holder's size, fsynced.
    static func applyDatabaseDelta(_ body: ArraySlice<UInt8>, to path: String) throws(NodeError) {
        guard body.count >= 8, (body.count - 8) % 4100 == 0 else { throw NodeError.io("a malformed delta") }
        do {
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            let start = body.startIndex
            let size = body[start..<(start + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            var offset = start + 8
            while offset < body.endIndex {
                let page = body[offset..<(offset + 4)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                guard page >= 1, page * 4096 <= size else {
                    throw NodeError.io("page \(page) is outside the delta")
                }
                try handle.seek(toOffset: (page - 1) * 4096)
                try handle.write(contentsOf: body[(offset + 4)..<(offset + 4100)])
                offset += 4100
            }
            try handle.truncate(atOffset: size)
            try handle.synchronize()
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError.io("\(error)")
        }
    }
}
