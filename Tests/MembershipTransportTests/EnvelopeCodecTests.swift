import Membership
import MembershipTransport
import NIOCore
import Testing

@Suite("Envelope codec")
struct EnvelopeCodecTests {
    static let state = MemberState(
        metadata: MemberMetadata(
            id: "node-1",
            gossipAddress: "10.0.0.1:7946",
            peerAddress: "10.0.0.1:8082",
            dataAddress: "10.0.0.1:8080",
            zone: "eu-1a",
            weight: 2.5,
            version: "0.1.0",
            lifecycle: .joining,
            instance: 0xDEAD_BEEF_CAFE,
            storageID: "5f0c6a3e-7d1b-4c8e-9a52-0e1f2b3c4d5e",
            clusterID: "c0ffee00-0000-4000-8000-000000000001"
        ),
        status: .suspect,
        incarnation: Incarnation(1_700_000_000_123),
        accuser: "node-2"
    )

    static let messages: [MembershipMessage] = [
        .ping(sequence: 1), .ack(sequence: 2), .pingRequest(sequence: 3, target: "node-3"), .indirectAck(sequence: 4),
        .nack(sequence: 5), .gossip, .syncRequest(digest: [state.digest]),
        .syncResponse(states: [state], digest: [state.digest]), .syncDelta(states: [state, state]),
    ]

    @Test(arguments: messages)
    func roundTrips(_ message: MembershipMessage) throws {
        let envelope = MembershipEnvelope(sender: Self.state, message: message, updates: [Self.state])
        var buffer = ByteBuffer()
        EnvelopeCodec.encode(envelope, into: &buffer)
        let length = buffer.readInteger(as: UInt32.self)!
        #expect(Int(length) == buffer.readableBytes)
        #expect(try EnvelopeCodec.decode(buffer) == envelope)
    }

    /// A member of the previous build sends format 1 (no storage or cluster id): still understood.
    @Test func formatOneFramesAreReadWithoutIdentity() throws {
        var old = Self.state
        old.metadata.storageID = ""
        old.metadata.clusterID = ""
        var frame = ByteBuffer()
        EnvelopeCodec.encode(MembershipEnvelope(sender: old, message: .gossip, updates: [old]), into: &frame)
        frame.moveReaderIndex(forwardBy: 4)
        // Format 2 with both ids empty is format 1 plus two zero bytes after each member's instance.
        var bytes = Array(frame.readableBytesView)
        bytes[0] = 1
        var removed = 0
        for index in bytes.indices.reversed() where index + 1 < bytes.count {
            let instance = withUnsafeBytes(of: UInt64(0xDEAD_BEEF_CAFE).bigEndian, Array.init)
            if index >= 8, Array(bytes[(index - 8)..<index]) == instance, bytes[index] == 0, bytes[index + 1] == 0 {
                bytes.removeSubrange(index...(index + 1))
                removed += 1
            }
        }
        #expect(removed == 2)
        let decoded = try EnvelopeCodec.decode(ByteBuffer(bytes: bytes))
        #expect(decoded == MembershipEnvelope(sender: old, message: .gossip, updates: [old]))
    }

    @Test func garbageIsRejectedNotTrusted() {
        var generator = SplitMix64(seed: 9)
        for size in [0, 1, 7, 64, 500] {
            var buffer = ByteBuffer()
            for _ in 0..<size { buffer.writeInteger(UInt8(truncatingIfNeeded: generator.next())) }
            #expect(throws: EnvelopeCodec.DecodingError.self) { try EnvelopeCodec.decode(buffer) }
        }
        // A valid frame truncated anywhere is rejected too.
        var full = ByteBuffer()
        EnvelopeCodec.encode(MembershipEnvelope(sender: Self.state, message: .gossip, updates: []), into: &full)
        full.moveReaderIndex(forwardBy: 4)
        for cut in stride(from: 0, to: full.readableBytes - 1, by: 5) {
            #expect(throws: EnvelopeCodec.DecodingError.self) {
                try EnvelopeCodec.decode(full.getSlice(at: full.readerIndex, length: cut)!)
            }
        }
        // Another format version is refused.
        var versioned = full
        versioned.setInteger(UInt8(99), at: versioned.readerIndex)
        #expect(throws: EnvelopeCodec.DecodingError.self) { try EnvelopeCodec.decode(versioned) }
    }
}
