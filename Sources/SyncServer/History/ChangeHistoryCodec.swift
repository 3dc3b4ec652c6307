/// The bytes of a history file (`<db>-history`): a 32-byte header, then one record per retired
/// generation, appended as generations retire.
///
///     header:  "TURSOCHG" | version u32 | reserved u32 | lineage u64 | floor sequence u64   (big-endian)
///     record:  length u32 | FNV-1a-32 of payload u32 | payload
///     payload: varints salt1 salt2 start end | endChecksum u64 | varint retiredAt groups
///              per group: varint (end - previous end) pageCount, pages as ascending deltas
///              varint checksumCount (0 or end - start), then that many u32 (per-commit checksums)
///
/// A record is appended and fsynced before the WAL reset that retires its generation, so a crash
/// leaves either a torn record (dropped on load) or a record of the generation still in the WAL
/// (dropped by `PageSource` on load: its salts match the WAL's).
enum ChangeHistoryCodec {
    static let magic: [UInt8] = Array("TURSOCHG".utf8)
    static let version: UInt32 = 1
    static let headerSize = 32
    static let recordHeaderSize = 8

    typealias DecodeError = Protobuf.DecodingError

    static func header(lineage: UInt64, floorSequence: UInt64) -> [UInt8] {
        var out = self.magic
        out.appendBigEndian(self.version)
        out.appendBigEndian(UInt32(0))
        out.appendBigEndian(lineage)
        out.appendBigEndian(floorSequence)
        return out
    }

    static func record(_ generation: ChangeHistory.Generation) -> [UInt8] {
        var payload: [UInt8] = []
        Protobuf.appendVarint(UInt64(generation.salt1), to: &payload)
        Protobuf.appendVarint(UInt64(generation.salt2), to: &payload)
        Protobuf.appendVarint(generation.startSequence, to: &payload)
        Protobuf.appendVarint(generation.endSequence, to: &payload)
        payload.appendBigEndian(generation.endChecksum)
        Protobuf.appendVarint(generation.retiredAtMilliseconds, to: &payload)
        Protobuf.appendVarint(UInt64(generation.groups.count), to: &payload)
        var previousEnd = generation.startSequence
        for group in generation.groups {
            Protobuf.appendVarint(group.endSequence - previousEnd, to: &payload)
            previousEnd = group.endSequence
            Protobuf.appendVarint(UInt64(group.pages.count), to: &payload)
            var previousPage: UInt32 = 0
            for page in group.pages {
                Protobuf.appendVarint(UInt64(page - previousPage), to: &payload)
                previousPage = page
            }
        }
        Protobuf.appendVarint(UInt64(generation.checksums.count), to: &payload)
        for checksum in generation.checksums { payload.appendBigEndian(checksum) }
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + self.recordHeaderSize)
        out.appendBigEndian(UInt32(payload.count))
        out.appendBigEndian(fnv1a32(payload[...]))
        out.append(contentsOf: payload)
        return out
    }

    /// The whole file, and where each record starts in it.
    static func file(_ history: ChangeHistory) -> (bytes: [UInt8], recordOffsets: [Int]) {
        var out = self.header(lineage: history.lineage, floorSequence: history.floorSequence)
        var offsets: [Int] = []
        for generation in history.generations {
            offsets.append(out.count)
            out.append(contentsOf: self.record(generation))
        }
        return (out, offsets)
    }

    static func encodedSize(_ history: ChangeHistory) -> Int {
        self.headerSize + history.generations.reduce(0) { $0 + self.record($1).count }
    }

    /// Decodes a file. Returns the history and the byte offset where each record starts plus the end
    /// of the last valid one; a torn or corrupt tail ends the history there (it was never acknowledged:
    /// its generation is still in the WAL).
    static func decode(
        _ bytes: [UInt8]
    ) throws(DecodeError) -> (history: ChangeHistory, recordOffsets: [Int], validLength: Int) {
        guard bytes.count >= self.headerSize, Array(bytes[0..<8]) == self.magic else {
            throw DecodeError(description: "not a change history file")
        }
        var reader = Protobuf.Reader(bytes[8...])
        let version = try reader.bigEndian(UInt32.self)
        guard version == self.version else {
            throw DecodeError(
                description: "change history version \(version) is not supported (this build reads \(self.version))"
            )
        }
        _ = try reader.bigEndian(UInt32.self)
        var history = ChangeHistory(
            lineage: try reader.bigEndian(UInt64.self),
            floorSequence: try reader.bigEndian(UInt64.self)
        )
        var offsets: [Int] = []
        var offset = self.headerSize
        while bytes.count - offset >= self.recordHeaderSize {
            var header = Protobuf.Reader(bytes[offset...])
            let length = Int(try header.bigEndian(UInt32.self))
            let checksum = try header.bigEndian(UInt32.self)
            let start = offset + self.recordHeaderSize
            guard length <= bytes.count - start, fnv1a32(bytes[start..<(start + length)]) == checksum,
                let generation = try? self.generation(bytes[start..<(start + length)]),
                history.generations.isEmpty || generation.startSequence == history.endSequence
            else { break }
            history.generations.append(generation)
            offsets.append(offset)
            offset = start + length
        }
        return (history, offsets, offset)
    }

    private static func generation(_ payload: ArraySlice<UInt8>) throws(DecodeError) -> ChangeHistory.Generation {
        var reader = Protobuf.Reader(payload)
        let salt1 = UInt32(truncatingIfNeeded: try reader.varint())
        let salt2 = UInt32(truncatingIfNeeded: try reader.varint())
        let start = try reader.varint()
        let end = try reader.varint()
        let endChecksum = try reader.bigEndian(UInt64.self)
        let retiredAt = try reader.varint()
        let count = try reader.varint()
        guard end >= start, count <= end - start + 1 else { throw DecodeError(description: "bad generation bounds") }
        var groups: [ChangeHistory.Group] = []
        var previousEnd = start
        for _ in 0..<count {
            let delta = try reader.varint()
            guard delta > 0, delta <= end - previousEnd else { throw DecodeError(description: "bad group bounds") }
            previousEnd += delta
            let pageCount = try reader.varint()
            guard pageCount <= UInt64(payload.count) else { throw DecodeError(description: "bad page count") }
            var pages: [UInt32] = []
            pages.reserveCapacity(Int(pageCount))
            var page: UInt64 = 0
            for _ in 0..<pageCount {
                page += try reader.varint()
                guard page <= UInt64(UInt32.max) else { throw DecodeError(description: "bad page number") }
                pages.append(UInt32(page))
            }
            groups.append(ChangeHistory.Group(endSequence: previousEnd, pages: pages))
        }
        let checksumCount = try reader.varint()
        guard checksumCount == 0 || (checksumCount == end - start && checksumCount <= UInt64(payload.count) / 4) else {
            throw DecodeError(description: "bad checksum count")
        }
        var checksums: [UInt32] = []
        checksums.reserveCapacity(Int(checksumCount))
        for _ in 0..<checksumCount { checksums.append(try reader.bigEndian(UInt32.self)) }
        guard count == 0 || previousEnd == end, reader.isAtEnd else {
            throw DecodeError(description: "bad generation record")
        }
        return ChangeHistory.Generation(
            salt1: salt1,
            salt2: salt2,
            startSequence: start,
            endSequence: end,
            endChecksum: endChecksum,
            retiredAtMilliseconds: retiredAt,
            groups: groups,
            checksums: checksums
        )
    }
}

/// FNV-1a, 32 bits: detects a torn or overwritten record, nothing more.
func fnv1a32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var hash: UInt32 = 0x811c_9dc5
    for byte in bytes {
        hash ^= UInt32(byte)
        hash = hash &* 0x0100_0193
    }
    return hash
}

extension [UInt8] {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { self.append(contentsOf: $0) }
    }
}
