import Crypto
import Foundation
import Replication
import SyncServer
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The copies this node keeps as a follower, in `<data>/_replicas/<name>/`: the owner's database
/// file (`db`), WAL (`db-wal`) and change history (`db-history`) byte for byte, named as SQLite and
/// the backend name them (so the history's tools read a copy as they read a live database, and a
/// promotion moves the files as they are), and `base`, the digest of
/// the history its database file was retired or installed with (`ShipmentPlan.Copy.base`). SQLite never opens them: a follower only appends checked frames,
/// and retires a generation the way SQLite's `wal_checkpoint(TRUNCATE)` does on the owner (the
/// newest version of every page into the database file, the file cut to the last commit's size),
/// so both sides hold the same bytes. Every step is durable before it is acknowledged, and each
/// is idempotent when repeated after a crash. The caller serialises the steps of one name.
final class ReplicaCopies: Sendable {
    let root: String
    /// Each copy's WAL tail, read once from disk.
    private let tails = Mutex<[String: WALTail]>([:])

    init(dataDirectory: String) {
        self.root = dataDirectory + "/_replicas"
    }

    func directory(_ name: String) -> String { "\(self.root)/\(name)" }
    func path(_ name: String, _ file: String) -> String { "\(self.root)/\(name)/\(file)" }
    func path(_ name: String, _ kind: NamespaceFiles.Kind) -> String {
        switch kind {
        case .db: "\(self.root)/\(name)/db"
        case .wal: "\(self.root)/\(name)/db-wal"
        case .history: "\(self.root)/\(name)/db-history"
        }
    }

    /// The names with a copy here.
    func names() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: self.root)) ?? []).filter {
            !$0.hasPrefix(".") && NamespaceName.isValid($0)
        }
    }

    /// What the copy of `name` holds (an empty position and nothing retired when there is none).
    func copy(_ name: String) throws(NodeError) -> ShipmentPlan.Copy {
        let tail = try self.tail(name)
        return ShipmentPlan.Copy(position: tail.position, base: self.base(name))
    }

    /// Appends checked frames at exactly `previous`, durably. Returns the new position.
    func append(_ name: String, _ bytes: [UInt8], after previous: WALPosition) throws(NodeError) -> WALPosition {
        let tail = try self.tail(name)
        if let mismatch = FollowerRules.check(tail.position, continues: previous) { throw Self.refusal(mismatch) }
        let next: WALTail
        do {
            next = try tail.appending(bytes)
        } catch {
            throw Self.refusal(error)
        }
        let created = !FileManager.default.fileExists(atPath: self.path(name, .wal))
        try self.ensureDirectory(name)
        try Self.write(self.path(name, .wal), bytes, at: previous.offset, truncatingAfter: true)
        if created { NamespaceFiles.syncDirectory(self.directory(name)) }
        self.tails.withLock { $0[name] = next }
        return next.position
    }

    /// Retires the generation the copy holds whole (it ends at `end`): the history as the owner
    /// wrote it at its checkpoint, the newest page versions into the database file, the file cut to
    /// the last commit's size, `base` recorded, and only then the WAL emptied.
    func retire(_ name: String, end: WALPosition, history: [UInt8]) throws(NodeError) -> ShipmentPlan.Copy {
        let tail = try self.tail(name)
        if let mismatch = FollowerRules.check(tail.position, continues: end) { throw Self.refusal(mismatch) }
        guard let header = tail.header, end.generation != nil else {
            throw NodeError(.replicaConflict, "no WAL generation to retire", status: 409)
        }
        // Until it is done the copy names no base: a crash in the middle never passes for either
        // side of it (the WAL keeps the generation, so the history's base stays its start).
        try self.forgetBase(name)
        try Self.replace(self.path(name, .history), with: history)
        let wal = self.path(name, .wal)
        // A generation without a commit (a header, a rolled-back spill) leaves the database file
        // as it is, as SQLite's checkpoint does.
        if tail.databasePages > 0 {
            let pages = tail.newestPages { offset, count in Self.read(wal, at: offset, count: count) }
            try Self.copyPages(pages, from: wal, into: self.path(name, .db), header: header, pages: tail.databasePages)
        }
        let base = Self.digest(history)
        try Self.replace(self.path(name, "base"), with: Array(base.utf8))
        try Self.truncate(wal, to: 0)
        self.tails.withLock { $0[name] = WALTail() }
        return ShipmentPlan.Copy(position: .empty, base: base)
    }

    /// Replaces the copy with the owner's files (a full copy): written beside it, synced, then
    /// swapped in with one rename.
    func install(
        _ name: String,
        database: ArraySlice<UInt8>,
        wal: ArraySlice<UInt8>,
        history: ArraySlice<UInt8>
    ) throws(NodeError) -> ShipmentPlan.Copy {
        let tail = try Self.committed(wal)
        let incoming = "\(self.root)/.incoming-\(name)"
        try? FileManager.default.removeItem(atPath: incoming)
        do {
            try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true)
        } catch {
            throw NodeError.io("cannot create \(incoming): \(error)")
        }
        try Self.replace(incoming + "/db", with: Array(database))
        try Self.replace(incoming + "/db-wal", with: Array(wal))
        try Self.replace(incoming + "/db-history", with: Array(history))
        let base = Self.digest(Array(history))
        try Self.replace(incoming + "/base", with: Array(base.utf8))
        NamespaceFiles.syncDirectory(incoming)
        // The old copy leaves whole (one rename) before the new one arrives whole (another).
        let trash = "\(self.root)/.trash-\(name)"
        try? FileManager.default.removeItem(atPath: trash)
        if FileManager.default.fileExists(atPath: self.directory(name)) {
            guard rename(self.directory(name), trash) == 0 else {
                throw NodeError.io("cannot set the old copy of \(name) aside: \(String(cString: strerror(errno)))")
            }
        }
        guard rename(incoming, self.directory(name)) == 0 else {
            throw NodeError.io("cannot install the copy of \(name): \(String(cString: strerror(errno)))")
        }
        NamespaceFiles.syncDirectory(self.root)
        try? FileManager.default.removeItem(atPath: trash)
        self.tails.withLock { $0[name] = tail }
        return ShipmentPlan.Copy(position: tail.position, base: base)
    }

    /// Brings the copy up to the owner's files without copying the database file whole: the pages
    /// the owner's change history says changed since the copy's base (`delta`, as
    /// `Cluster.databaseDelta` writes it) into the database file in place, then the owner's history
    /// and WAL. A crash between the steps leaves the old history, so the same delta (or a larger
    /// one) is sent again.
    func installDelta(
        _ name: String,
        delta: ArraySlice<UInt8>,
        wal: ArraySlice<UInt8>,
        history: ArraySlice<UInt8>
    ) throws(NodeError) -> ShipmentPlan.Copy {
        let tail = try Self.committed(wal)
        guard FileManager.default.fileExists(atPath: self.path(name, .db)) else {
            throw NodeError(.replicaConflict, "no database file to bring up to date", status: 409)
        }
        // Until it is done the copy names no base and holds no WAL: a crash in the middle leaves a
        // copy that is caught up whole again, from what its history says its database file holds.
        try self.forgetBase(name)
        try Self.truncate(self.path(name, .wal), to: 0)
        self.tails.withLock { $0[name] = WALTail() }
        try Cluster.applyDatabaseDelta(delta, to: self.path(name, .db))
        try Self.replace(self.path(name, .history), with: Array(history))
        self.tails.withLock { $0[name] = nil }
        try Self.replace(self.path(name, .wal), with: Array(wal))
        let base = Self.digest(Array(history))
        try Self.replace(self.path(name, "base"), with: Array(base.utf8))
        self.tails.withLock { $0[name] = tail }
        return ShipmentPlan.Copy(position: tail.position, base: base)
    }

    /// Where the copy's database file stands in its history (what a delta is computed from).
    func historyBase(_ name: String) -> DatabaseFileDelta.Position? {
        DatabaseFileDelta.base(databasePath: self.path(name, .db))
    }

    /// The tail of a WAL a copy is given whole, which must end at a commit.
    private static func committed(_ wal: ArraySlice<UInt8>) throws(NodeError) -> WALTail {
        let tail = WALTail(wal: wal)
        guard tail.position.offset == wal.count else {
            throw NodeError(.replicaConflict, "the WAL of the copy does not end at a commit", status: 409)
        }
        return tail
    }

    /// Drops the copy of `name` (no longer a follower of it).
    func remove(_ name: String) {
        self.tails.withLock { $0[name] = nil }
        // Its base first: a copy cut short by a crash must never claim to be the owner's files.
        unlink(self.path(name, "base"))
        NamespaceFiles.syncDirectory(self.directory(name))
        try? FileManager.default.removeItem(atPath: self.directory(name))
        NamespaceFiles.syncDirectory(self.root)
    }

    // MARK: - Files

    private func tail(_ name: String) throws(NodeError) -> WALTail {
        if let tail = self.tails.withLock({ $0[name] }) { return tail }
        let wal = self.path(name, .wal)
        let size = NamespaceFiles.size(wal)
        var tail = WALTail()
        tail.advance(size: size) { offset, count in Self.read(wal, at: offset, count: count) }
        // Bytes past the last commit are a write cut short by a crash: never acknowledged.
        if size > tail.position.offset { try Self.truncate(wal, to: tail.position.offset) }
        self.tails.withLock { $0[name] = tail }
        return tail
    }

    /// The copy's base; none without a database file (a copy whose removal was cut short).
    private func base(_ name: String) -> String? {
        guard FileManager.default.fileExists(atPath: self.path(name, .db)) else { return nil }
        return FileManager.default.contents(atPath: self.path(name, "base")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The digest that names a change history's content (`base`).
    static func digest(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).hex }

    private func forgetBase(_ name: String) throws(NodeError) {
        guard unlink(self.path(name, "base")) == 0 || errno == ENOENT else {
            throw NodeError.io("cannot remove the base of \(name): \(String(cString: strerror(errno)))")
        }
        NamespaceFiles.syncDirectory(self.directory(name))
    }

    /// Leftovers of an install or a removal a crash cut short.
    func removeLeftovers() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: self.root)) ?? []
        where entry.hasPrefix(".trash-") || entry.hasPrefix(".incoming-") {
            try? FileManager.default.removeItem(atPath: "\(self.root)/\(entry)")
        }
    }

    private func ensureDirectory(_ name: String) throws(NodeError) {
        guard !FileManager.default.fileExists(atPath: self.directory(name)) else { return }
        do {
            try FileManager.default.createDirectory(atPath: self.directory(name), withIntermediateDirectories: true)
        } catch {
            throw NodeError.io("cannot create \(self.directory(name)): \(error)")
        }
        NamespaceFiles.syncDirectory(self.root)
    }

    static func refusal(_ error: ReplicationError) -> NodeError {
        NodeError(.replicaConflict, error.description, status: 409)
    }

    /// Up to `count` bytes of `path` from `offset` (fewer at its end; none when it is missing).
    static func read(_ path: String, at offset: Int, count: Int) -> [UInt8] {
        guard let reader = FileReader(path: path) else { return [] }
        return reader.read(count: max(0, min(count, reader.size - offset)), at: offset)
    }

    /// Writes `bytes` at `offset` (cutting what follows when asked) and fsyncs.
    private static func write(_ path: String, _ bytes: [UInt8], at offset: Int, truncatingAfter: Bool) throws(NodeError)
    {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw NodeError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard Self.writeAll(fd, bytes[...], at: offset),
            !truncatingAfter || ftruncate(fd, off_t(offset + bytes.count)) == 0, fsync(fd) == 0
        else { throw NodeError.io("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    private static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, at offset: Int) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    private static func truncate(_ path: String, to length: Int) throws(NodeError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0, fsync(fd) == 0 else {
            throw NodeError.io("cannot truncate \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Writes a whole file atomically: a temporary file, fsync, rename (the directory is synced by
    /// the caller's next step or here).
    private static func replace(_ path: String, with bytes: [UInt8]) throws(NodeError) {
        let temporary = path + ".tmp"
        try? FileManager.default.removeItem(atPath: temporary)
        try Self.write(temporary, bytes, at: 0, truncatingAfter: true)
        guard rename(temporary, path) == 0 else {
            throw NodeError.io("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
        NamespaceFiles.syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// What SQLite's checkpoint does to the database file: each page's newest version written in
    /// place, the file cut (or grown) to the last commit's size, fsynced.
    private static func copyPages(
        _ pages: [UInt32: Int],
        from wal: String,
        into database: String,
        header: WALHeader,
        pages count: UInt32
    ) throws(NodeError) {
        let source = open(wal, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw NodeError.io("cannot open \(wal)") }
        defer { close(source) }
        let fd = open(database, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw NodeError.io("cannot open \(database): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var page = [UInt8](repeating: 0, count: header.pageSize)
        for (number, offset) in pages.sorted(by: { $0.key < $1.key }) where number <= count {
            let n = page.withUnsafeMutableBytes { pread(source, $0.baseAddress!, header.pageSize, off_t(offset)) }
            guard n == header.pageSize, Self.writeAll(fd, page[...], at: (Int(number) - 1) * header.pageSize) else {
                throw NodeError.io("cannot copy page \(number) into \(database)")
            }
        }
        guard ftruncate(fd, off_t(Int(count) * header.pageSize)) == 0, fsync(fd) == 0 else {
            throw NodeError.io("cannot sync \(database): \(String(cString: strerror(errno)))")
        }
    }
}
