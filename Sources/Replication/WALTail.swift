/// Where a WAL's committed transactions end, kept up to date by reading only what was appended.
///
/// SQLite's recovery rule decides what is committed: frames count while their salts match the
/// header and their cumulative checksum matches; the last such frame with a non-zero database size
/// ends the last transaction. Frames after it (a transaction being written) are not committed yet.
/// The owner's shipper reads its WAL with `advance`; a follower checks what it receives with
/// `appending`, so both apply the one rule.
public struct WALTail: Sendable {
    public private(set) var header: WALHeader?
    /// Just past the last commit frame.
    public private(set) var position: WALPosition = .empty
    /// The database size, in pages, the last commit recorded (0 before any).
    public private(set) var databasePages: UInt32 = 0
    /// The cumulative checksum at the end of every transaction of this generation, by offset (the
    /// header's end included): a position that is not here is no position of this WAL.
    public private(set) var commits: [Int: WALChecksum] = [:]

    public init() {}

    /// The tail of a whole WAL held in memory.
    public init(wal: ArraySlice<UInt8>) {
        self.init()
        self.advance(size: wal.count) { offset, count in
            Array(wal[(wal.startIndex + offset)..<(wal.startIndex + min(offset + count, wal.count))])
        }
    }

    /// The tail of a WAL whose header is `header` and that holds committed transactions up to
    /// `position` (a follower's copy, resumed), the last recording `databasePages` pages.
    public init(header: WALHeader, position: WALPosition, databasePages: UInt32) {
        self.header = header
        self.position = position
        self.databasePages = databasePages
        self.commits = [WALHeader.size: header.checksum, position.offset: position.checksum]
    }

    /// Reads what was committed past the position in a WAL file of `size` bytes; `read(offset,
    /// count)` returns the bytes there (fewer at the end of the file). A new header (the WAL was
    /// reset) starts over from it. Returns true when the position changed.
    @discardableResult
    public mutating func advance(size: Int, read: (Int, Int) -> [UInt8]) -> Bool {
        guard size >= WALHeader.size, let header = WALHeader.parse(read(0, WALHeader.size)) else {
            guard self.header != nil else { return false }
            self = WALTail()
            return true
        }
        var changed = false
        if header != self.header {
            self.start(header)
            changed = true
        }
        let frameSize = header.frameSize
        var window = max(1, (4 << 20) / frameSize) * frameSize
        while size - self.position.offset >= frameSize {
            let start = self.position.offset
            let available = (size - start) / frameSize * frameSize
            let wanted = min(window, available)
            let bytes = read(start, wanted)
            guard bytes.count == wanted else { break }  // the file changed under the read
            if self.scan(bytes, at: start) > 0 {
                changed = true
                continue
            }
            // Nothing committed in the window: a transaction still being written or a torn frame
            // (stop at the last commit), or one transaction longer than the window (read more).
            guard wanted < available else { break }
            window *= 2
        }
        return changed
    }

    /// This tail after `bytes` are appended at its position: whole frames of its generation (at an
    /// empty WAL: a header, then frames), every one checksum-valid, the last one a commit.
    public func appending(_ bytes: [UInt8]) throws(ReplicationError) -> WALTail {
        var next = self
        var body = bytes[...]
        if self.header == nil {
            guard let header = WALHeader.parse(bytes) else {
                throw ReplicationError(.invalidFrames, "the shipment to an empty WAL does not start with a WAL header")
            }
            next.start(header)
            body = bytes.dropFirst(WALHeader.size)
        }
        guard let header = next.header else { throw ReplicationError(.invalidFrames, "no WAL header") }
        guard body.count % header.frameSize == 0 else {
            throw ReplicationError(.invalidFrames, "\(body.count) bytes are not whole frames of \(header.frameSize)")
        }
        let consumed = next.scan(Array(body), at: next.position.offset)
        guard consumed == body.count else {
            throw ReplicationError(
                .invalidFrames,
                "frames from \(next.position.offset) do not continue this WAL (salts, checksum or an unfinished transaction)"
            )
        }
        return next
    }

    /// Where the newest committed version of every page starts in the WAL (its data, past the frame
    /// header): what a checkpoint copies into the database file. Reads the frames the position covers.
    public func newestPages(read: (Int, Int) -> [UInt8]) -> [UInt32: Int] {
        guard let header = self.header else { return [:] }
        let frameSize = header.frameSize
        let window = max(1, (4 << 20) / frameSize) * frameSize
        var pages: [UInt32: Int] = [:]
        var offset = WALHeader.size
        while offset < self.position.offset {
            let bytes = read(offset, min(window, self.position.offset - offset))
            guard bytes.count >= frameSize else { break }
            bytes.withUnsafeBytes { raw in
                var at = 0
                while raw.count - at >= frameSize {
                    pages[raw.bigEndianUInt32(at: at)] = offset + at + WALHeader.frameHeaderSize
                    at += frameSize
                }
            }
            offset += bytes.count / frameSize * frameSize
        }
        return pages
    }

    private mutating func start(_ header: WALHeader) {
        self = WALTail()
        self.header = header
        self.position = WALPosition(generation: header.generation, offset: WALHeader.size, checksum: header.checksum)
        self.commits[WALHeader.size] = header.checksum
    }

    /// Checks the frames of `bytes` (whole frames, at file offset `offset` = the position) and moves
    /// the position past the last complete transaction. Returns the bytes it covers.
    private mutating func scan(_ bytes: [UInt8], at offset: Int) -> Int {
        guard let header = self.header, offset == self.position.offset else { return 0 }
        let frameSize = header.frameSize
        var running = self.position.checksum
        var committed = 0
        var pages = self.databasePages
        var commits: [(Int, WALChecksum)] = []
        bytes.withUnsafeBytes { raw in
            var at = 0
            while raw.count - at >= frameSize {
                let frame = UnsafeRawBufferPointer(rebasing: raw[at..<(at + frameSize)])
                guard frame.bigEndianUInt32(at: 0) != 0, frame.bigEndianUInt32(at: 8) == header.salt1,
                    frame.bigEndianUInt32(at: 12) == header.salt2
                else { return }
                running.update(UnsafeRawBufferPointer(rebasing: frame[0..<8]), bigEndian: header.bigEndianChecksum)
                running.update(
                    UnsafeRawBufferPointer(rebasing: frame[WALHeader.frameHeaderSize...]),
                    bigEndian: header.bigEndianChecksum
                )
                guard running.s1 == frame.bigEndianUInt32(at: 16), running.s2 == frame.bigEndianUInt32(at: 20) else {
                    return
                }
                at += frameSize
                let size = frame.bigEndianUInt32(at: 4)
                if size != 0 {
                    committed = at
                    pages = size
                    commits.append((offset + at, running))
                }
            }
        }
        guard committed > 0, let last = commits.last else { return 0 }
        for (end, checksum) in commits { self.commits[end] = checksum }
        self.position = WALPosition(generation: header.generation, offset: last.0, checksum: last.1)
        self.databasePages = pages
        return committed
    }
}
