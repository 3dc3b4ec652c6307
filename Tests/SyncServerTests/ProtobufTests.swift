import Replication
import Testing

@testable import SyncServer

@Suite("Protobuf codec")
struct ProtobufTests {
    @Test func varintRoundTrip() throws {
        for value: UInt64 in [0, 1, 127, 128, 300, 16_384, UInt64(UInt32.max), UInt64.max] {
            var out: [UInt8] = []
            Protobuf.appendVarint(value, to: &out)
            #expect(out.count == Protobuf.varintSize(value))
            var reader = Protobuf.Reader(out)
            #expect(try reader.varint() == value)
            #expect(reader.isAtEnd)
        }
    }

    @Test func pullRequestRoundTrip() throws {
        var request = PullUpdatesRequest()
        request.serverRevision = "abc"
        request.clientRevision = "0011223344556677-8899aabbccddeeff:42"
        request.longPollTimeoutMilliseconds = 3000
        request.serverPagesSelector = RoaringBitmap(values: [0, 1, 2, 70_000]).portableBytes()
        let decoded = try PullUpdatesRequest(decoding: request.encoded())
        #expect(decoded == request)
    }

    @Test func pullRequestSkipsUnknownFields() throws {
        // field 6 (client_pages, bytes), field 7 (string), field 15 (fixed32), then field 3.
        let bytes: [UInt8] = [0x32, 0x02, 0xAA, 0xBB, 0x3A, 0x01, 0x78, 0x7D, 1, 2, 3, 4, 0x1A, 0x01, 0x78]
        let decoded = try PullUpdatesRequest(decoding: bytes)
        #expect(decoded.clientRevision == "x")
    }

    @Test func truncatedRequestIsRejected() {
        #expect(throws: Protobuf.DecodingError.self) { try PullUpdatesRequest(decoding: [0x1A, 0x05, 0x41]) }
        #expect(throws: Protobuf.DecodingError.self) { try PullUpdatesRequest(decoding: [0x80]) }
    }

    @Test func responseHeaderHasRawEncodingAndPagesProtocol() throws {
        let header = PullUpdatesResponseHeader(serverRevision: "r", databaseSizePages: 7).encodedDelimited()
        var reader = Protobuf.Reader(header)
        let length = try reader.varint()
        #expect(Int(length) == header.count - 1)
        let decoded = try PullUpdatesResponseHeader.decode(header[1...])
        #expect(decoded.revision == "r")
        #expect(decoded.size == 7)
        #expect(decoded.hasRaw)
        // raw_encoding is the empty message `1a 00`, protocol (field 8) is 1.
        #expect(header.suffix(4) == [0x1A, 0x00, 0x40, 0x01])
    }

    @Test func pageDataEncodingOmitsZeroPageID() {
        let page = [UInt8](repeating: 7, count: 4096)
        var first: [UInt8] = []
        var second: [UInt8] = []
        page.withUnsafeBytes { PageDataEncoder.append(pageID: 0, page: $0, to: &first) }
        page.withUnsafeBytes { PageDataEncoder.append(pageID: 300, page: $0, to: &second) }
        // length varint (2 bytes) + tag + len(2) + 4096
        #expect(first.count == 2 + 1 + 2 + 4096)
        #expect(second.count == 2 + 3 + 1 + 2 + 4096)
        #expect(Array(second[2..<5]) == [0x08, 0xAC, 0x02])
    }
}

@Suite("Roaring bitmap")
struct RoaringBitmapTests {
    @Test func arrayContainersRoundTrip() throws {
        let values: [UInt32] = [0, 5, 9, 65_535, 65_536, 1_000_000]
        let bitmap = try RoaringBitmap(portable: RoaringBitmap(values: values).portableBytes())
        for value in values { #expect(bitmap.contains(value)) }
        for value: UInt32 in [1, 4, 10, 65_534, 65_537, 999_999] { #expect(!bitmap.contains(value)) }
    }

    @Test func bitmapContainer() throws {
        // cookie 12346, 1 container, key 0, cardinality 5000 (stored as 4999), offset, then 1024 words.
        var bytes: [UInt8] = [0x3A, 0x30, 0, 0, 1, 0, 0, 0, 0, 0, 0x87, 0x13, 16, 0, 0, 0]
        var words = [UInt64](repeating: 0, count: 1024)
        for value in stride(from: 0, to: 10_000, by: 2) { words[value / 64] |= 1 << UInt64(value % 64) }
        for word in words {
            for shift in stride(from: 0, to: 64, by: 8) {
                bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        let bitmap = try RoaringBitmap(portable: bytes)
        #expect(bitmap.contains(0))
        #expect(bitmap.contains(9998))
        #expect(!bitmap.contains(9999))
        #expect(!bitmap.contains(10_000))
    }

    @Test func runContainers() throws {
        // cookie 12347 with (n-1)=0 in the high half, run flags [1], key 0, card-1, then 1 run: 10..19.
        let bytes: [UInt8] = [0x3B, 0x30, 0, 0, 0x01, 0, 0, 9, 0, 1, 0, 10, 0, 9, 0]
        let bitmap = try RoaringBitmap(portable: bytes)
        #expect(!bitmap.contains(9))
        #expect(bitmap.contains(10))
        #expect(bitmap.contains(19))
        #expect(!bitmap.contains(20))
    }

    @Test func garbageIsRejected() {
        #expect(throws: RoaringBitmap.FormatError.self) { try RoaringBitmap(portable: [1, 2, 3, 4]) }
        #expect(throws: RoaringBitmap.FormatError.self) { try RoaringBitmap(portable: [0x3A, 0x30, 0, 0, 9, 0, 0, 0]) }
    }
}

@Suite("Revisions")
struct RevisionTests {
    @Test func formatAndParse() {
        let revision = Revision(
            salt1: 0xDEAD_BEEF,
            salt2: 1,
            checksum: WALChecksum(s1: 2, s2: 0xFFFF_FFFF),
            frame: 1234
        )
        #expect(revision.description == "deadbeef00000001-00000002ffffffff:1234")
        #expect(Revision(revision.description) == revision)
    }

    @Test func foreignRevisionsDoNotParse() {
        for text in [
            "", "53", "0", "deadbeef00000001-00000002ffffffff:", "DEADBEEF00000001-00000002ffffffff:1",
            "deadbeef00000001+00000002ffffffff:1", "deadbeef00000001-00000002ffffffff:-1",
        ] {
            #expect(Revision(text) == nil, "\(text)")
        }
    }
}
