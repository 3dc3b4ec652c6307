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
    var revision: Revision
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
/// long-lived descriptors, never through SQLite (see `FileReader`).
final class PageSource: Sendable {
    static let pageSize = 4096

    private struct State {
        var index = WALIndex()
        var wal: FileReader?
    }

    let mainFile: FileReader
    let walPath: String
    private let state = Mutex(State())

    init(databasePath: String) throws(PullError) {
        guard let main = FileReader(path: databasePath) else {
            throw PullError(status: 500, message: "cannot open database file \(databasePath)")
        }
        self.mainFile = main
        self.walPath = databasePath + "-wal"
    }

    /// Reads new commits from the WAL and returns the newest revision.
    @discardableResult
    func refresh() -> Revision {
        self.state.withLock { state in
            if let wal = state.wal, wal.inode != fileInode(self.walPath) {
                state.wal = nil  // the WAL was replaced: a new history
            }
            if state.wal == nil { state.wal = FileReader(path: self.walPath) }
            if let wal = state.wal {
                _ = state.index.refresh(from: wal)
            } else if state.index.header != nil {
                state.index = WALIndex()
            }
            return state.index.latestRevision
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
            var target = index.latestRevision
            if !request.serverRevision.isEmpty {
                guard let pinned = Revision(request.serverRevision), index.contains(pinned) else {
                    throw PullError(
                        status: 400,
                        message: "server_revision \(request.serverRevision) is not in this database's history"
                    )
                }
                target = pinned
            }
            let size = index.databaseSize(atFrame: target.frame) ?? mainPages
            func location(_ page: UInt32) -> PageLocation {
                if let frame = index.latestFrame(ofPage: page, atOrBefore: target.frame) {
                    return .wal(offset: index.pageOffset(ofFrame: frame))
                }
                let offset = Int(page - 1) * Self.pageSize
                return offset + Self.pageSize <= mainSize ? .main(offset: offset) : .zero
            }
            var pages: [(pageID: UInt32, location: PageLocation)] = []
            var full = true
            if !request.clientRevision.isEmpty, let client = Revision(request.clientRevision), index.contains(client),
                client.frame <= target.frame
            {
                full = false
                let changed = index.changedPages(after: client.frame, upTo: target.frame)
                for page in changed.keys.sorted() where Int(page) <= size {
                    if let selector, !selector.contains(page - 1) { continue }
                    pages.append((page - 1, .wal(offset: index.pageOffset(ofFrame: changed[page]!))))
                }
            } else if size > 0 {
                pages.reserveCapacity(size)
                for page in UInt32(1)...UInt32(size) {
                    if let selector, !selector.contains(page - 1) { continue }
                    pages.append((page - 1, location(page)))
                }
            }
            return PullPlan(revision: target, databaseSizePages: size, pages: pages, isFullSnapshot: full)
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
}

#if canImport(Glibc)
import Glibc
#endif

func fileInode(_ path: String) -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return UInt64(info.st_ino)
}
