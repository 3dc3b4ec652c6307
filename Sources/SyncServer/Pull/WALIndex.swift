import Replication

/// An incremental index of a SQLite WAL file: which checksum-valid *committed* frames hold which page,
/// and the cumulative checksum at every commit frame.
///
/// SQLite's recovery rule decides what is committed: frames are valid while their salts match the
/// header and the cumulative checksum matches; the last valid frame with a non-zero "database size"
/// field is the last commit. Frames after it (a transaction being written, rolled-back spill frames)
/// are never indexed, so they are never served. Committed frames are immutable as long as the WAL is
/// never restarted behind the backend's back: only its own checkpoint resets the WAL, and that retires
/// the generation into the change history first (`PageSource.checkpoint`).
///
/// `refresh()` reads only the bytes after the last commit, so the cost of a pull does not grow with the
/// WAL's history. Not thread-safe: `PageSource` guards it with a lock.
struct WALIndex {
    static let headerSize = 32
    static let frameHeaderSize = 24

    typealias Header = WALHeader

    private(set) var header: Header?

    /// The salts of the WAL `wal` holds now (nil without a readable header): they change when the
    /// WAL is reset, before any frame is overwritten.
    static func salts(of wal: FileReader?) -> WALSalts? {
        wal.flatMap { Self.parseHeader($0.read(count: Self.headerSize, at: 0)) }?.salts
    }
    /// The number of committed frames (frames after it are not served).
    private(set) var committedFrames = 0
    /// Page number of every committed frame (frame `i` at index `i - 1`).
    private var pageNumbers: [UInt32] = []
    /// Commit frames, ascending, with the database size (in pages) and cumulative checksum at each.
    private var commitFrames: [Int32] = []
    private var commitSizes: [UInt32] = []
    private var commitChecksums: [UInt64] = []
    /// For every page, the committed frames that hold a version of it, ascending.
    private var framesByPage: [UInt32: [Int32]] = [:]
    private var checksumAtCommit = WALChecksum.zero

    init() {}

    var frameSize: Int { Self.frameHeaderSize + (self.header?.pageSize ?? 4096) }

    /// The byte offset of frame `frame`'s page data (1-based).
    func pageOffset(ofFrame frame: Int) -> Int {
        Self.headerSize + (frame - 1) * self.frameSize + Self.frameHeaderSize
    }

    /// Reads new committed frames from `file`. Returns true when the index changed. Resets the index
    /// when the WAL header changed (the WAL was restarted or replaced: a new history).
    mutating func refresh(from file: FileReader) -> Bool {
        let fileSize = file.size
        guard fileSize >= Self.headerSize else {
            if self.header != nil {
                self = WALIndex()
                return true
            }
            return false
        }
        let headerBytes = file.read(count: Self.headerSize, at: 0)
        guard let header = Self.parseHeader(headerBytes) else {
            if self.header != nil {
                self = WALIndex()
                return true
            }
            return false
        }
        var changed = false
        if header != self.header {
            self = WALIndex()
            self.header = header
            self.checksumAtCommit = header.checksum
            changed = true
        }
        let frameSize = self.frameSize
        var offset = Self.headerSize + self.committedFrames * frameSize
        guard fileSize - offset >= frameSize else { return changed }

        var running = self.checksumAtCommit
        var pending: [UInt32] = []
        let chunkFrames = max(1, (4 << 20) / frameSize)
        var buffer = [UInt8](repeating: 0, count: chunkFrames * frameSize)
        scan: while fileSize - offset >= frameSize {
            let wanted = min(chunkFrames, (fileSize - offset) / frameSize) * frameSize
            let n = buffer.withUnsafeMutableBytes {
                file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<wanted]), at: offset)
            }
            let frames = n / frameSize
            if frames == 0 { break }
            var stop = false
            buffer.withUnsafeBytes { raw in
                for i in 0..<frames {
                    let frame = UnsafeRawBufferPointer(rebasing: raw[(i * frameSize)..<((i + 1) * frameSize)])
                    let pageNumber = frame.bigEndianUInt32(at: 0)
                    let commitSize = frame.bigEndianUInt32(at: 4)
                    guard pageNumber != 0, frame.bigEndianUInt32(at: 8) == header.salt1,
                        frame.bigEndianUInt32(at: 12) == header.salt2
                    else {
                        stop = true
                        return
                    }
                    running.update(UnsafeRawBufferPointer(rebasing: frame[0..<8]), bigEndian: header.bigEndianChecksum)
                    running.update(
                        UnsafeRawBufferPointer(rebasing: frame[Self.frameHeaderSize...]),
                        bigEndian: header.bigEndianChecksum
                    )
                    guard running.s1 == frame.bigEndianUInt32(at: 16), running.s2 == frame.bigEndianUInt32(at: 20)
                    else {
                        stop = true
                        return
                    }
                    pending.append(pageNumber)
                    if commitSize != 0 {
                        self.commit(pending, size: commitSize, checksum: running)
                        pending.removeAll(keepingCapacity: true)
                        changed = true
                    }
                }
            }
            if stop { break scan }
            offset += frames * frameSize
        }
        return changed
    }

    private mutating func commit(_ pages: [UInt32], size: UInt32, checksum: WALChecksum) {
        for page in pages {
            self.committedFrames += 1
            self.pageNumbers.append(page)
            self.framesByPage[page, default: []].append(Int32(self.committedFrames))
        }
        self.commitFrames.append(Int32(self.committedFrames))
        self.commitSizes.append(size)
        self.commitChecksums.append(checksum.packed)
        self.checksumAtCommit = checksum
    }

    static func parseHeader(_ bytes: [UInt8]) -> Header? { WALHeader.parse(bytes) }

    /// The revision of the newest commit.
    var latestRevision: Revision { self.revision(atCommitIndex: self.commitFrames.count - 1) }

    private func revision(atCommitIndex index: Int) -> Revision {
        guard let header = self.header else { return .noWAL }
        guard index >= 0 else {
            return Revision(salt1: header.salt1, salt2: header.salt2, checksum: header.checksum, frame: 0)
        }
        return Revision(
            salt1: header.salt1,
            salt2: header.salt2,
            checksum: WALChecksum(packed: self.commitChecksums[index]),
            frame: Int(self.commitFrames[index])
        )
    }

    /// True when `revision` names exactly a commit of this WAL's history (same salts, same frame,
    /// same cumulative checksum).
    func contains(_ revision: Revision) -> Bool {
        guard let header = self.header else { return revision == .noWAL }
        guard revision.salt1 == header.salt1, revision.salt2 == header.salt2 else { return false }
        if revision.frame == 0 { return revision.checksum == header.checksum }
        guard let index = self.commitIndex(ofFrame: revision.frame) else { return false }
        return self.commitChecksums[index] == revision.checksum.packed
    }

    private func commitIndex(ofFrame frame: Int) -> Int? {
        let index = self.lastCommitIndex(atOrBefore: frame)
        guard index >= 0, Int(self.commitFrames[index]) == frame else { return nil }
        return index
    }

    /// Index into `commitFrames` of the last commit at or before `frame`, or -1.
    private func lastCommitIndex(atOrBefore frame: Int) -> Int {
        var lo = 0
        var hi = self.commitFrames.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(self.commitFrames[mid]) <= frame { lo = mid + 1 } else { hi = mid }
        }
        return lo - 1
    }

    /// The number of commits in this generation.
    var commitCount: Int { self.commitFrames.count }

    /// The commit frame of commit `number` (1-based); 0 for commit 0 (the generation's start).
    func frame(ofCommit number: Int) -> Int { number == 0 ? 0 : Int(self.commitFrames[number - 1]) }

    /// SQLite's cumulative checksum at commit `number` (1-based).
    func checksum(ofCommit number: Int) -> UInt64 { self.commitChecksums[number - 1] }

    /// The commit number (1-based) whose commit frame is `frame`, 0 for frame 0, or nil.
    func commitNumber(ofFrame frame: Int) -> Int? {
        if frame == 0 { return 0 }
        return self.commitIndex(ofFrame: frame).map { $0 + 1 }
    }

    /// The cumulative checksum at every commit, in commit order.
    var checksumsByCommit: [UInt64] { self.commitChecksums }

    /// The pages each commit wrote, in commit order (what a retired generation keeps).
    func pagesByCommit() -> [[UInt32]] {
        var result: [[UInt32]] = []
        result.reserveCapacity(self.commitFrames.count)
        var start = 0
        for end in self.commitFrames {
            result.append(Array(Set(self.pageNumbers[start..<Int(end)])).sorted())
            start = Int(end)
        }
        return result
    }

    /// The database size in pages at commit frame `frame`, or nil for frame 0 (size from the main file).
    func databaseSize(atFrame frame: Int) -> Int? {
        let index = self.lastCommitIndex(atOrBefore: frame)
        return index >= 0 ? Int(self.commitSizes[index]) : nil
    }

    /// The newest committed frame at or before `frame` holding `page`, or nil (the main file has it).
    func latestFrame(ofPage page: UInt32, atOrBefore frame: Int) -> Int? {
        guard let frames = self.framesByPage[page] else { return nil }
        var lo = 0
        var hi = frames.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(frames[mid]) <= frame { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 ? Int(frames[lo - 1]) : nil
    }

    /// Pages written by frames in `(after, upTo]`, each with its newest frame in that range.
    /// Costs one step per frame in the range, not per frame in the WAL.
    func changedPages(after: Int, upTo: Int) -> [UInt32: Int] {
        var pages: [UInt32: Int] = [:]
        guard upTo > after else { return pages }
        for frame in (after + 1)...upTo {
            pages[self.pageNumbers[frame - 1]] = frame
        }
        return pages
    }
}

/// The salts that name one WAL generation.
typealias WALSalts = WALGeneration

extension WALIndex.Header {
    var salts: WALSalts { self.generation }
}

extension ChangeHistory.Generation {
    var salts: WALSalts { WALSalts(salt1: self.salt1, salt2: self.salt2) }
}
