import Membership
import NIOCore

/// The wire format of membership envelopes: a 4-byte big-endian length, then a payload that starts
/// with a format version byte (2; frames of version 1, which lack the storage and cluster ids, are
/// still read, so members of the previous build are understood during an upgrade). Integers are LEB128 varints, strings and lists length-prefixed.
/// Frames over `maximumFrameSize` and anything that does not parse are rejected (the connection is
/// closed), never trusted.
public enum EnvelopeCodec {
    public static let version: UInt8 = 2
    public static let maximumFrameSize = 4 << 20

    public struct DecodingError: Error, CustomStringConvertible {
        public var description: String
    }

    // MARK: encoding

    public static func encode(_ envelope: MembershipEnvelope, into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        let start = buffer.writerIndex
        buffer.writeInteger(self.version)
        self.write(envelope.sender, &buffer)
        self.write(envelope.message, &buffer)
        self.writeVarint(UInt64(envelope.updates.count), &buffer)
        for update in envelope.updates { self.write(update, &buffer) }
        buffer.setInteger(UInt32(buffer.writerIndex - start), at: lengthIndex)
    }

    static func writeVarint(_ value: UInt64, _ buffer: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.writeInteger(UInt8(v))
    }

    static func writeString(_ value: String, _ buffer: inout ByteBuffer) {
        self.writeVarint(UInt64(value.utf8.count), &buffer)
        buffer.writeString(value)
    }

    static func write(_ state: MemberState, _ buffer: inout ByteBuffer) {
        let m = state.metadata
        self.writeString(m.id.rawValue, &buffer)
        self.writeString(m.gossipAddress, &buffer)
        self.writeString(m.peerAddress, &buffer)
        self.writeString(m.dataAddress, &buffer)
        self.writeString(m.zone, &buffer)
        buffer.writeInteger(m.weight.bitPattern)
        self.writeString(m.version, &buffer)
        buffer.writeInteger(m.lifecycle.rawValue)
        buffer.writeInteger(m.instance)
        self.writeString(m.storageID, &buffer)
        self.writeString(m.clusterID, &buffer)
        buffer.writeInteger(state.status.rawValue)
        self.writeVarint(state.incarnation.value, &buffer)
        self.writeString(state.accuser?.rawValue ?? "", &buffer)
    }

    static func write(_ digest: MemberDigest, _ buffer: inout ByteBuffer) {
        self.writeString(digest.id.rawValue, &buffer)
        self.writeVarint(digest.incarnation.value, &buffer)
        buffer.writeInteger(digest.status.rawValue)
    }

    static func write(_ message: MembershipMessage, _ buffer: inout ByteBuffer) {
        switch message {
        case .ping(let sequence):
            buffer.writeInteger(UInt8(1))
            self.writeVarint(sequence, &buffer)
        case .ack(let sequence):
            buffer.writeInteger(UInt8(2))
            self.writeVarint(sequence, &buffer)
        case .pingRequest(let sequence, let target):
            buffer.writeInteger(UInt8(3))
            self.writeVarint(sequence, &buffer)
            self.writeString(target.rawValue, &buffer)
        case .indirectAck(let sequence):
            buffer.writeInteger(UInt8(4))
            self.writeVarint(sequence, &buffer)
        case .nack(let sequence):
            buffer.writeInteger(UInt8(5))
            self.writeVarint(sequence, &buffer)
        case .gossip:
            buffer.writeInteger(UInt8(6))
        case .syncRequest(let digest):
            buffer.writeInteger(UInt8(7))
            self.writeVarint(UInt64(digest.count), &buffer)
            for entry in digest { self.write(entry, &buffer) }
        case .syncResponse(let states, let digest):
            buffer.writeInteger(UInt8(8))
            self.writeVarint(UInt64(states.count), &buffer)
            for state in states { self.write(state, &buffer) }
            self.writeVarint(UInt64(digest.count), &buffer)
            for entry in digest { self.write(entry, &buffer) }
        case .syncDelta(let states):
            buffer.writeInteger(UInt8(9))
            self.writeVarint(UInt64(states.count), &buffer)
            for state in states { self.write(state, &buffer) }
        }
    }

    // MARK: decoding

    /// Decodes one frame's payload (without the length prefix).
    public static func decode(_ payload: ByteBuffer) throws(DecodingError) -> MembershipEnvelope {
        var buffer = payload
        guard let version = buffer.readInteger(as: UInt8.self) else { throw DecodingError(description: "empty frame") }
        guard version == 1 || version == self.version else {
            throw DecodingError(description: "unsupported format version \(version)")
        }
        let sender = try self.readState(&buffer, version: version)
        let message = try self.readMessage(&buffer, version: version)
        let count = try self.readCount(&buffer)
        var updates: [MemberState] = []
        updates.reserveCapacity(count)
        for _ in 0..<count { updates.append(try self.readState(&buffer, version: version)) }
        guard buffer.readableBytes == 0 else { throw DecodingError(description: "trailing bytes in frame") }
        return MembershipEnvelope(sender: sender, message: message, updates: updates)
    }

    static func readVarint(_ buffer: inout ByteBuffer) throws(DecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = buffer.readInteger(as: UInt8.self) else {
                throw DecodingError(description: "truncated varint")
            }
            guard shift < 64 else { throw DecodingError(description: "varint too long") }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    static func readCount(_ buffer: inout ByteBuffer) throws(DecodingError) -> Int {
        let count = try self.readVarint(&buffer)
        // Every element takes at least one byte: a count beyond the bytes left is garbage.
        guard count <= UInt64(buffer.readableBytes) else { throw DecodingError(description: "count exceeds frame") }
        return Int(count)
    }

    static func readString(_ buffer: inout ByteBuffer) throws(DecodingError) -> String {
        let length = try self.readVarint(&buffer)
        guard length <= 4096, let string = buffer.readString(length: Int(length)) else {
            throw DecodingError(description: "invalid string")
        }
        return string
    }

    static func readInteger<T: FixedWidthInteger>(_ buffer: inout ByteBuffer, as: T.Type) throws(DecodingError) -> T {
        guard let value = buffer.readInteger(as: T.self) else { throw DecodingError(description: "truncated integer") }
        return value
    }

    static func readState(_ buffer: inout ByteBuffer, version format: UInt8) throws(DecodingError) -> MemberState {
        let id = try self.readString(&buffer)
        guard !id.isEmpty else { throw DecodingError(description: "empty node id") }
        let gossip = try self.readString(&buffer)
        let peer = try self.readString(&buffer)
        let data = try self.readString(&buffer)
        let zone = try self.readString(&buffer)
        let weight = Double(bitPattern: try self.readInteger(&buffer, as: UInt64.self))
        let version = try self.readString(&buffer)
        guard let lifecycle = MemberLifecycle(rawValue: try self.readInteger(&buffer, as: UInt8.self)) else {
            throw DecodingError(description: "invalid lifecycle")
        }
        let instance = try self.readInteger(&buffer, as: UInt64.self)
        var storageID = ""
        var clusterID = ""
        if format >= 2 {
            storageID = try self.readString(&buffer)
            clusterID = try self.readString(&buffer)
        }
        guard let status = MemberStatus(rawValue: try self.readInteger(&buffer, as: UInt8.self)) else {
            throw DecodingError(description: "invalid status")
        }
        let incarnation = try self.readVarint(&buffer)
        let accuser = try self.readString(&buffer)
        guard weight.isFinite, weight >= 0 else { throw DecodingError(description: "invalid weight") }
        let metadata = MemberMetadata(
            id: NodeID(id),
            gossipAddress: gossip,
            peerAddress: peer,
            dataAddress: data,
            zone: zone,
            weight: weight,
            version: version,
            lifecycle: lifecycle,
            instance: instance,
            storageID: storageID,
            clusterID: clusterID
        )
        return MemberState(
            metadata: metadata,
            status: status,
            incarnation: Incarnation(incarnation),
            accuser: accuser.isEmpty ? nil : NodeID(accuser)
        )
    }

    static func readDigest(_ buffer: inout ByteBuffer) throws(DecodingError) -> MemberDigest {
        let id = try self.readString(&buffer)
        let incarnation = try self.readVarint(&buffer)
        guard let status = MemberStatus(rawValue: try self.readInteger(&buffer, as: UInt8.self)) else {
            throw DecodingError(description: "invalid status")
        }
        return MemberDigest(id: NodeID(id), incarnation: Incarnation(incarnation), status: status)
    }

    static func readMessage(_ buffer: inout ByteBuffer, version: UInt8) throws(DecodingError) -> MembershipMessage {
        let kind = try self.readInteger(&buffer, as: UInt8.self)
        switch kind {
        case 1: return .ping(sequence: try self.readVarint(&buffer))
        case 2: return .ack(sequence: try self.readVarint(&buffer))
        case 3:
            let sequence = try self.readVarint(&buffer)
            return .pingRequest(sequence: sequence, target: NodeID(try self.readString(&buffer)))
        case 4: return .indirectAck(sequence: try self.readVarint(&buffer))
        case 5: return .nack(sequence: try self.readVarint(&buffer))
        case 6: return .gossip
        case 7:
            let count = try self.readCount(&buffer)
            var digest: [MemberDigest] = []
            for _ in 0..<count { digest.append(try self.readDigest(&buffer)) }
            return .syncRequest(digest: digest)
        case 8:
            let count = try self.readCount(&buffer)
            var states: [MemberState] = []
            for _ in 0..<count { states.append(try self.readState(&buffer, version: version)) }
            let digestCount = try self.readCount(&buffer)
            var digest: [MemberDigest] = []
            for _ in 0..<digestCount { digest.append(try self.readDigest(&buffer)) }
            return .syncResponse(states: states, digest: digest)
        case 9:
            let count = try self.readCount(&buffer)
            var states: [MemberState] = []
            for _ in 0..<count { states.append(try self.readState(&buffer, version: version)) }
            return .syncDelta(states: states)
        default:
            throw DecodingError(description: "unknown message kind \(kind)")
        }
    }
}
