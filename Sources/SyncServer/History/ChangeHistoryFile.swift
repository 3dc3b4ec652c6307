import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The durable history file next to a database (`<db>-history`): appends a generation and fsyncs it
/// before its WAL reset; rewrites itself (temporary file, fsync, rename, directory fsync) when
/// retention changes old records. One writer: the backend serving the database, under
/// `PageSource`'s lock.
final class ChangeHistoryFile: @unchecked Sendable {
    static func path(forDatabase databasePath: String) -> String { databasePath + "-history" }

    let path: String
    private(set) var history: ChangeHistory
    /// Where each record starts, and where the next one goes.
    private var recordOffsets: [Int]
    private var length: Int

    /// Opens the history, creating it with a new lineage when missing. A torn tail is cut off.
    init(path: String) throws(SyncServerError) {
        self.path = path
        if let data = FileManager.default.contents(atPath: path) {
            let decoded: (history: ChangeHistory, recordOffsets: [Int], validLength: Int)
            do {
                decoded = try ChangeHistoryCodec.decode(Array(data))
            } catch {
                throw .unsupportedDatabase("cannot read the change history \(path): \(error)")
            }
            self.history = decoded.history
            self.recordOffsets = decoded.recordOffsets
            self.length = decoded.validLength
            if decoded.validLength < data.count { try self.truncate(to: decoded.validLength) }
        } else {
            var generator = SystemRandomNumberGenerator()
            self.history = ChangeHistory(lineage: generator.next(), floorSequence: 0)
            self.recordOffsets = []
            self.length = ChangeHistoryCodec.headerSize
            try self.replace(with: self.history)
        }
    }

    /// Appends `generation` durably (fsynced before returning).
    func append(_ generation: ChangeHistory.Generation) throws(SyncServerError) {
        let record = ChangeHistoryCodec.record(generation)
        let fd = open(self.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw self.failure("open") }
        defer { close(fd) }
        guard writeAll(fd, record, at: self.length), fsync(fd) == 0 else { throw self.failure("append to") }
        self.recordOffsets.append(self.length)
        self.length += record.count
        self.history.generations.append(generation)
    }

    /// Removes the newest record (a generation that turned out not to be retired), durably. The
    /// memory follows the file only once the file changed, so the two never disagree.
    func removeLast() throws(SyncServerError) {
        guard let offset = self.recordOffsets.last else { return }
        try self.truncate(to: offset)
        self.recordOffsets.removeLast()
        self.history.generations.removeLast()
    }

    /// Starts a new lineage after the history became unprovable: no generations, every commit up to
    /// `floorSequence` behind the floor.
    func restart(floorSequence: UInt64) throws(SyncServerError) {
        var generator = SystemRandomNumberGenerator()
        try self.replace(with: ChangeHistory(lineage: generator.next(), floorSequence: floorSequence))
    }

    /// Applies retention; rewrites the file when it changed anything.
    func prune(
        _ retention: ChangeHistory.Retention,
        nowMilliseconds: UInt64,
        databaseBytes: Int
    ) throws(SyncServerError) {
        var pruned = self.history
        guard pruned.prune(retention, nowMilliseconds: nowMilliseconds, databaseBytes: databaseBytes) else { return }
        try self.replace(with: pruned)
    }

    var byteCount: Int { self.length }

    private func truncate(to length: Int) throws(SyncServerError) {
        let fd = open(self.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw self.failure("open") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0, fsync(fd) == 0 else { throw self.failure("truncate") }
        self.length = length
    }

    /// Writes `history` as the whole file atomically (a temporary file, fsync, rename, directory
    /// fsync), then adopts it.
    private func replace(with history: ChangeHistory) throws(SyncServerError) {
        let (bytes, offsets) = ChangeHistoryCodec.file(history)
        let temporary = self.path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw self.failure("create") }
        let written = writeAll(fd, bytes, at: 0) && fsync(fd) == 0
        close(fd)
        guard written, rename(temporary, self.path) == 0 else {
            unlink(temporary)
            throw self.failure("write")
        }
        let directory = open((self.path as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
        self.history = history
        self.recordOffsets = offsets
        self.length = bytes.count
    }

    private func failure(_ action: String) -> SyncServerError {
        .unsupportedDatabase("cannot \(action) the change history \(self.path): \(String(cString: strerror(errno)))")
    }
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        done += n
    }
    return true
}
