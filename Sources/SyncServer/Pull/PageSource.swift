import Synchronization

/// Where a page of a snapshot is read from.
enum PageLocation: Equatable {
    /// Byte offset of the page data in the WAL file.
    case wal(offset: Int)
    /// Byte offset in the main database file.
    case main(offset: Int)
    /// A page past the end of the main file that no frame wrote (reads as zeros).
    case zero
}

/// What one `/pull-updates` answer contains: the revision it brings the client to, the database size,
/// and the pages (0-based ids, ascending) with where each is read from.
struct PullPlan {
    var revision: SyncRevision
    var databaseSizePages: Int
    var pages: [(pageID: UInt32, location: PageLocation)]
    /// True when the client's revision was not in this history and it gets the full snapshot.
    var isFullSnapshot: Bool
}

struct PullError: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var description: String { self.message }
}

/// Serves page snapshots and page deltas of one database from its main file and WAL, read through
/// long-lived descriptors, never through SQLite (see `FileReader`), and the change history of the WAL
/// generations its checkpoints retired.
///
/// Consistency: the main file changes only in `checkpoint`, which the backend runs only while no
/// pull is in flight (`CheckpointBarrier`); between checkpoints the WAL only grows.
final class PageSource: Sendable {
    static let pageSize = 4096

    private struct State {
        var index = WALIndex()
        var wal: FileReader?
        let history: ChangeHistoryFile
    }

    /// Where a client's revision sits in this history.
    enum Position: Equatable {
        /// Commit `commit` (1-based; 0 is the generation's start) of the current WAL generation.
        case current(commit: Int)
        /// A retired commit the change history still covers.
        case retired(sequence: UInt64)
    }

    let mainFile: FileReader
    let walPath: String
    private let state: Mutex<State>

    init(databasePath: String) throws(PullError) {
        guard let main = FileReader(path: databasePath) else {
            throw PullError(status: 500, message: "cannot open database file \(databasePath)")
        }
        self.mainFile = main
        self.walPath = databasePath + "-wal"
        let history: ChangeHistoryFile
        do {
            history = try ChangeHistoryFile(path: ChangeHistoryFile.path(forDatabase: databasePath))
        } catch {
            throw PullError(status: 500, message: "\(error)")
        }
        self.state = Mutex(State(history: history))
        // A checkpoint that crashed after recording its generation but before the WAL reset leaves a
        // record of the generation that is still in the WAL: it was never retired.
        try self.state.withLock { state throws(PullError) in
            Self.refresh(&state, walPath: self.walPath)
            if let last = state.history.history.generations.last, let header = state.index.header,
                last.salt1 == header.salt1, last.salt2 == header.salt2
            {
                do {
                    try state.history.removeLast()
                } catch {
                    throw PullError(status: 500, message: "\(error)")
                }
            }
        }
    }

    /// Reads new commits from the WAL and returns the newest revision.
    @discardableResult
    func refresh() -> SyncRevision {
        self.state.withLock { state in
            Self.refresh(&state, walPath: self.walPath)
            return Self.revision(state, commit: state.index.commitCount)
        }
    }

    private static func refresh(_ state: inout State, walPath: String) {
        if let wal = state.wal, wal.inode != fileInode(walPath) {
            state.wal = nil  // the WAL was replaced: a new history
        }
        if state.wal == nil { state.wal = FileReader(path: walPath) }
        if let wal = state.wal {
            _ = state.index.refresh(from: wal)
        } else if state.index.header != nil {
            state.index = WALIndex()
        }
    }

    private static func revision(_ state: State, commit: Int) -> SyncRevision {
        let history = state.history.history
        return SyncRevision(
            lineage: history.lineage,
            epoch: 0,
            sequence: history.endSequence + UInt64(commit),
            checksum: commit > 0 ? state.index.checksum(ofCommit: commit) : history.endChecksum
        )
    }

    /// Where `text` (a client's or a pinned revision) sits in this history, or nil when it is not part
    /// of it (another lineage, a diverged copy, the future, older than the retained history).
    private static func position(of text: String, in state: State) -> Position? {
        let history = state.history.history
        let index = state.index
        let base = history.endSequence
        if let revision = SyncRevision(text) {
            guard revision.lineage == history.lineage, revision.epoch == 0,
                revision.sequence <= base + UInt64(index.commitCount)
            else { return nil }
            if revision.sequence > base {
                let commit = Int(revision.sequence - base)
                return revision.checksum == index.checksum(ofCommit: commit) ? .current(commit: commit) : nil
            }
            if let recorded = history.checksum(at: revision.sequence), revision.checksum != recorded { return nil }
            if revision.sequence == base { return .current(commit: 0) }
            return revision.sequence >= history.floorSequence ? .retired(sequence: revision.sequence) : nil
        }
        guard let legacy = Revision(text) else { return nil }
        if legacy == .noWAL {
            return index.header == nil && base == 0 && history.generations.isEmpty ? .current(commit: 0) : nil
        }
        guard index.contains(legacy), let commit = index.commitNumber(ofFrame: legacy.frame) else { return nil }
        return .current(commit: commit)
    }

    /// The database size in pages according to the main file alone.
    private func mainFileSizePages() -> Int {
        let size = self.mainFile.size
        guard size >= 100 else { return 0 }
        let header = self.mainFile.read(count: 100, at: 0)
        let inHeader = header.withUnsafeBytes { $0.bigEndianUInt32(at: 28) }
        let changeCounter = header.withUnsafeBytes { $0.bigEndianUInt32(at: 24) }
        let validFor = header.withUnsafeBytes { $0.bigEndianUInt32(at: 92) }
        if inHeader > 0 && changeCounter == validFor { return Int(inHeader) }
        return size / Self.pageSize
    }

    /// Plans the answer to a pull. `clientRevision` empty means bootstrap; an unknown or foreign client
    /// revision gets the full snapshot (as an incremental stream, which the client applies as a resync).
    func plan(_ request: PullUpdatesRequest) throws(PullError) -> PullPlan {
        let selector: RoaringBitmap?
        if request.serverPagesSelector.isEmpty {
            selector = nil
        } else {
            do {
                selector = try RoaringBitmap(portable: request.serverPagesSelector)
            } catch {
                throw PullError(status: 400, message: "invalid server_pages_selector: \(error)")
            }
        }
        guard request.encoding == 0 else {
            throw PullError(status: 400, message: "only raw page encoding is supported")
        }
        guard request.streamKind == 0 else {
            throw PullError(status: 400, message: "only page streams are supported")
        }
        self.refresh()
        let mainPages = self.mainFileSizePages()
        let mainSize = self.mainFile.size
        return try self.state.withLock { state throws(PullError) -> PullPlan in
            let index = state.index
            if let header = index.header, header.pageSize != Self.pageSize {
                throw PullError(status: 500, message: "WAL page size \(header.pageSize) is not 4096")
            }
            var targetCommit = index.commitCount
            if !request.serverRevision.isEmpty {
                guard case .current(let pinned) = Self.position(of: request.serverRevision, in: state) else {
                    throw PullError(
                        status: 400,
                        message: "server_revision \(request.serverRevision) is not in this database's history"
                    )
                }
                targetCommit = pinned
            }
            let targetFrame = index.frame(ofCommit: targetCommit)
            let size = index.databaseSize(atFrame: targetFrame) ?? mainPages
            func location(_ page: UInt32) -> PageLocation {
                if let frame = index.latestFrame(ofPage: page, atOrBefore: targetFrame) {
                    return .wal(offset: index.pageOffset(ofFrame: frame))
                }
                let offset = Int(page - 1) * Self.pageSize
                return offset + Self.pageSize <= mainSize ? .main(offset: offset) : .zero
            }
            var pages: [(pageID: UInt32, location: PageLocation)] = []
            var full = false
            switch request.clientRevision.isEmpty ? nil : Self.position(of: request.clientRevision, in: state) {
            case .current(let commit) where commit <= targetCommit:
                let changed = index.changedPages(after: index.frame(ofCommit: commit), upTo: targetFrame)
                for page in changed.keys.sorted() where Int(page) <= size {
                    if let selector, !selector.contains(page - 1) { continue }
                    pages.append((page - 1, .wal(offset: index.pageOffset(ofFrame: changed[page]!))))
                }
            case .retired(let sequence):
                var changed = state.history.history.pagesChanged(after: sequence) ?? []
                changed.formUnion(index.changedPages(after: 0, upTo: targetFrame).keys)
                for page in changed.sorted() where Int(page) <= size {
                    if let selector, !selector.contains(page - 1) { continue }
                    pages.append((page - 1, location(page)))
                }
            default:
                full = true
                if size > 0 {
                    pages.reserveCapacity(size)
                    for page in UInt32(1)...UInt32(size) {
                        if let selector, !selector.contains(page - 1) { continue }
                        pages.append((page - 1, location(page)))
                    }
                }
            }
            return PullPlan(
                revision: Self.revision(state, commit: targetCommit),
                databaseSizePages: size,
                pages: pages,
                isFullSnapshot: full
            )
        }
    }

    struct CheckpointResult: Sendable {
        /// Commits the checkpoint moved from the WAL into the change history.
        var retiredCommits: Int
        /// The WAL's size before the checkpoint.
        var walBytes: Int
        var revision: SyncRevision
        var historyBytes: Int
    }

    /// Retires the current WAL generation: records its page sets durably, then runs `truncateWAL`
    /// (SQLite's TRUNCATE checkpoint, returning an error message or nil), then starts a new generation.
    /// If the WAL was not reset, the record is taken back. Call only under the checkpoint barrier.
    func checkpoint(
        retention: ChangeHistory.Retention,
        nowMilliseconds: UInt64,
        truncateWAL: () -> String?
    ) throws(PullError) -> CheckpointResult {
        try self.state.withLock { state throws(PullError) -> CheckpointResult in
            Self.refresh(&state, walPath: self.walPath)
            let walBytes = state.wal?.size ?? 0
            let index = state.index
            var recorded = false
            do {
                if let header = index.header, index.commitCount > 0 {
                    try state.history.append(
                        ChangeHistory.generation(
                            salt1: header.salt1,
                            salt2: header.salt2,
                            startSequence: state.history.history.endSequence,
                            pagesByCommit: index.pagesByCommit(),
                            endChecksum: index.checksum(ofCommit: index.commitCount),
                            retiredAtMilliseconds: nowMilliseconds
                        )
                    )
                    recorded = true
                }
            } catch {
                throw PullError(status: 500, message: "\(error)")
            }
            let failure = truncateWAL()
            guard fileSize(self.walPath) < WALIndex.headerSize else {
                if recorded { try? state.history.removeLast() }
                throw PullError(status: 409, message: failure ?? "the WAL was not reset")
            }
            state.index = WALIndex()
            Self.refresh(&state, walPath: self.walPath)
            try? state.history.prune(retention, nowMilliseconds: nowMilliseconds, databaseBytes: self.mainFile.size)
            return CheckpointResult(
                retiredCommits: recorded ? index.commitCount : 0,
                walBytes: walBytes,
                revision: Self.revision(state, commit: state.index.commitCount),
                historyBytes: state.history.byteCount
            )
        }
    }

    /// The WAL's current size and the history file's, for reports.
    var sizes: (wal: Int, history: Int) {
        (fileSize(self.walPath), self.state.withLock { $0.history.byteCount })
    }

    /// Copies a page's bytes into `buffer` (4096 bytes).
    func read(_ location: PageLocation, into buffer: UnsafeMutableRawBufferPointer) {
        switch location {
        case .zero:
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
        case .main(let offset):
            let n = self.mainFile.read(into: buffer, at: offset)
            if n < buffer.count {
                UnsafeMutableRawBufferPointer(rebasing: buffer[n...]).initializeMemory(as: UInt8.self, repeating: 0)
            }
        case .wal(let offset):
            let wal = self.state.withLock { $0.wal }
            let n = wal?.read(into: buffer, at: offset) ?? 0
            if n < buffer.count {
                UnsafeMutableRawBufferPointer(rebasing: buffer[n...]).initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

func fileSize(_ path: String) -> Int {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return Int(info.st_size)
}

func fileInode(_ path: String) -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return UInt64(info.st_ino)
}
