/// The minimal protobuf (proto3 wire format) needed by `/pull-updates`: varints, length-delimited
/// fields and the four message types of the sync protocol. Hand-rolled: five messages do not justify
/// a code generator.
enum Protobuf {
    struct DecodingError: Error, CustomStringConvertible {
        var description: String
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    /// Appends a varint field (omitted when zero, as proto3 does).
    static func appendVarintField(_ number: Int, _ value: UInt64, to out: inout [UInt8]) {
        guard value != 0 else { return }
        self.appendVarint(UInt64(number << 3), to: &out)
        self.appendVarint(value, to: &out)
    }

    /// Appends a length-delimited field (always written: an empty message is meaningful).
    static func appendBytesField(_ number: Int, _ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        self.appendVarint(UInt64(number << 3 | 2), to: &out)
        self.appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// A cursor over an encoded message (also over the change history's records, which use the same
    /// varints and big-endian fixed-width integers).
    struct Reader {
        private let bytes: ArraySlice<UInt8>
        private(set) var offset: Int

        init(_ bytes: [UInt8]) { self.init(bytes[...]) }

        init(_ bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            self.offset = bytes.startIndex
        }

        var isAtEnd: Bool { self.offset >= self.bytes.endIndex }

        mutating func varint() throws(DecodingError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard self.offset < self.bytes.endIndex else { throw DecodingError(description: "truncated varint") }
                let byte = self.bytes[self.offset]
                self.offset += 1
                guard shift < 64 else { throw DecodingError(description: "varint too long") }
                result |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }

        /// Reads a field key: (field number, wire type).
        mutating func key() throws(DecodingError) -> (Int, Int) {
            let key = try self.varint()
            guard key >> 3 > 0, key >> 3 < 1 << 29 else { throw DecodingError(description: "invalid field number") }
            return (Int(key >> 3), Int(key & 7))
        }

        mutating func lengthDelimited() throws(DecodingError) -> ArraySlice<UInt8> {
            let length = try self.varint()
            guard length <= UInt64(self.bytes.endIndex - self.offset) else {
                throw DecodingError(description: "truncated length-delimited field")
            }
            let slice = self.bytes[self.offset..<(self.offset + Int(length))]
            self.offset += Int(length)
            return slice
        }

        mutating func skip(wireType: Int) throws(DecodingError) {
            switch wireType {
            case 0: _ = try self.varint()
            case 1: try self.advance(8)
            case 2: _ = try self.lengthDelimited()
            case 5: try self.advance(4)
            default: throw DecodingError(description: "unsupported wire type \(wireType)")
            }
        }

        /// A big-endian fixed-width integer.
        mutating func bigEndian<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(DecodingError) -> T {
            let size = MemoryLayout<T>.size
            guard self.bytes.endIndex - self.offset >= size else {
                throw DecodingError(description: "truncated integer")
            }
            var value: T = 0
            for byte in self.bytes[self.offset..<(self.offset + size)] { value = value << 8 | T(byte) }
            self.offset += size
            return value
        }

        private mutating func advance(_ count: Int) throws(DecodingError) {
            guard self.offset + count <= self.bytes.endIndex else {
                throw DecodingError(description: "truncated field")
            }
            self.offset += count
        }
    }
}

/// `PullUpdatesReqProtoBody`.
struct PullUpdatesRequest: Equatable {
    var encoding: UInt64 = 0
    var serverRevision = ""
    var clientRevision = ""
    var longPollTimeoutMilliseconds: UInt64 = 0
    var serverPagesSelector: [UInt8] = []
    var streamKind: UInt64 = 0

    init() {}

    init(decoding bytes: [UInt8]) throws(Protobuf.DecodingError) {
        var reader = Protobuf.Reader(bytes)
        while !reader.isAtEnd {
            let (number, wireType) = try reader.key()
            switch (number, wireType) {
            case (1, 0): self.encoding = try reader.varint()
            case (2, 2): self.serverRevision = String(decoding: try reader.lengthDelimited(), as: UTF8.self)
            case (3, 2): self.clientRevision = String(decoding: try reader.lengthDelimited(), as: UTF8.self)
            case (4, 0): self.longPollTimeoutMilliseconds = try reader.varint()
            case (5, 2): self.serverPagesSelector = Array(try reader.lengthDelimited())
            case (8, 0): self.streamKind = try reader.varint()
            default: try reader.skip(wireType: wireType)
            }
        }
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        Protobuf.appendVarintField(1, self.encoding, to: &out)
        if !self.serverRevision.isEmpty { Protobuf.appendBytesField(2, Array(self.serverRevision.utf8), to: &out) }
        if !self.clientRevision.isEmpty { Protobuf.appendBytesField(3, Array(self.clientRevision.utf8), to: &out) }
        Protobuf.appendVarintField(4, self.longPollTimeoutMilliseconds, to: &out)
        if !self.serverPagesSelector.isEmpty { Protobuf.appendBytesField(5, self.serverPagesSelector, to: &out) }
        Protobuf.appendVarintField(8, self.streamKind, to: &out)
        return out
    }
}

/// `PullUpdatesRespProtoBody`, written length-delimited before the pages.
struct PullUpdatesResponseHeader: Equatable {
    var serverRevision: String
    /// Database size in 4096-byte pages at `serverRevision`.
    var databaseSizePages: UInt64

    /// Encodes with `raw_encoding` present (the client requires it), apply mode Incremental (0) and
    /// protocol = Pages (1).
    func encodedDelimited() -> [UInt8] {
        var body: [UInt8] = []
        Protobuf.appendBytesField(1, Array(self.serverRevision.utf8), to: &body)
        Protobuf.appendVarintField(2, self.databaseSizePages, to: &body)
        Protobuf.appendBytesField(3, [UInt8](), to: &body)  // raw_encoding: PageSetRawEncodingProto {}
        Protobuf.appendVarintField(8, 1, to: &body)  // protocol: Pages
        var out: [UInt8] = []
        Protobuf.appendVarint(UInt64(body.count), to: &out)
        out.append(contentsOf: body)
        return out
    }

    /// Decodes a header (used by tests and the benchmark client).
    static func decode(
        _ bytes: ArraySlice<UInt8>
    ) throws(Protobuf.DecodingError) -> (revision: String, size: UInt64, hasRaw: Bool) {
        var reader = Protobuf.Reader(Array(bytes))
        var revision = ""
        var size: UInt64 = 0
        var hasRaw = false
        while !reader.isAtEnd {
            let (number, wireType) = try reader.key()
            switch (number, wireType) {
            case (1, 2): revision = String(decoding: try reader.lengthDelimited(), as: UTF8.self)
            case (2, 0): size = try reader.varint()
            case (3, 2):
                _ = try reader.lengthDelimited()
                hasRaw = true
            default: try reader.skip(wireType: wireType)
            }
        }
        return (revision, size, hasRaw)
    }
}

/// `PageData`: one 4096-byte page with its 0-based page id, written length-delimited.
enum PageDataEncoder {
    static let pageSize = 4096

    /// Appends a length-delimited `PageData { page_id, encoded_page }` for a 0-based page id.
    static func append(pageID: UInt64, page: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        precondition(page.count == self.pageSize)
        let idSize = pageID == 0 ? 0 : 1 + Protobuf.varintSize(pageID)
        let bodySize = idSize + 1 + Protobuf.varintSize(UInt64(self.pageSize)) + self.pageSize
        Protobuf.appendVarint(UInt64(bodySize), to: &out)
        Protobuf.appendVarintField(1, pageID, to: &out)
        Protobuf.appendVarint(UInt64(2 << 3 | 2), to: &out)
        Protobuf.appendVarint(UInt64(self.pageSize), to: &out)
        out.append(contentsOf: page)
    }
}
