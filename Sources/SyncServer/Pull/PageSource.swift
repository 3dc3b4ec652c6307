import Logging
import Replication
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
    /// The salts of the WAL generation the plan's WAL offsets belong to (nil without a WAL).
    var walSalts: WALSalts?
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

    struct State {
        var index = WALIndex()
        var wal: FileReader?
        let history: ChangeHistoryFile
        /// Commits of the current generation that a checkpoint which could not reset the WAL may have
        /// copied into the main file: a pinned revision before them would read newer pages there.
        var backfilledThrough = 0
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
    let logger: Logger
    let state: Mutex<State>

    init(databasePath: String, logger: Logger = Logger(label: "turso.sync")) throws(PullError) {
        guard let main = FileReader(path: databasePath) else {
            throw PullError(status: 500, message: "cannot open database file \(databasePath)")
        }
        self.mainFile = main
        self.walPath = databasePath + "-wal"
        self.logger = logger
        let history: ChangeHistoryFile
        do {
            history = try ChangeHistoryFile(path: ChangeHistoryFile.path(forDatabase: databasePath))
        } catch {
            throw PullError(status: 500, message: "\(error)")
        }
        self.state = Mutex(State(history: history))
        // A checkpoint that stopped (crash, busy) after recording its generation but before the WAL
        // reset leaves a record of the generation that is still in the WAL: it was never retired.
        try self.state.withLock { state throws(PullError) in
            self.refresh(&state)
            if Self.isProvisional(state) {
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
            self.refresh(&state)
            return Self.revision(state, commit: state.index.commitCount)
        }
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
                // A checkpoint that could not reset the WAL may have copied newer pages into the main
                // file; a pinned revision before them cannot be served consistently (the bootstrap
                // starts over).
                guard pinned >= state.backfilledThrough else {
                    throw PullError(
                        status: 400,
                        message: "server_revision \(request.serverRevision) is no longer readable; bootstrap again"
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
                isFullSnapshot: full,
                walSalts: index.header?.salts
            )
        }
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

    /// Whether the WAL still holds generation `salts` (call after reading a plan's pages: SQLite
    /// writes a new header before it overwrites any frame, so an unchanged header means the pages
    /// just read were not overwritten). Only another process's checkpoint can make this false.
    func walStillHolds(_ salts: WALSalts?) -> Bool {
        salts == nil || WALIndex.salts(of: self.state.withLock { $0.wal }) == salts
    }
}

#if canImport(Glibc)
import Glibc
#endif

func fileInode(_ path: String) -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return UInt64(info.st_ino)
}
