/// The binary form of what replicas exchange and store: messages (with a format version byte),
/// entries' payloads and configurations. Integers are LEB128 varints, byte strings length-prefixed.
/// Decoding checks every length against the input and refuses unknown tags and trailing bytes, so
/// a damaged or hostile frame is an error, never a trap or a different message.
public enum RaftCodec {
    public static let version: UInt8 = 1

    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    // MARK: messages

    public static func encode(_ message: RaftMessage) -> [UInt8] {
        var writer = Writer()
        writer.bytes.append(self.version)
        writer.varint(message.from.rawValue)
        writer.varint(message.to.rawValue)
        writer.varint(message.term)
        switch message.kind {
        case .preVote(let index, let term):
            writer.tag(1)
            writer.varint(index)
            writer.varint(term)
        case .preVoteResponse(let granted):
            writer.tag(2)
            writer.bool(granted)
        case .vote(let index, let term, let transfer):
            writer.tag(3)
            writer.varint(index)
            writer.varint(term)
            writer.bool(transfer)
        case .voteResponse(let granted):
            writer.tag(4)
            writer.bool(granted)
        case .append(let prevIndex, let prevTerm, let entries, let commit):
            writer.tag(5)
            writer.varint(prevIndex)
            writer.varint(prevTerm)
            writer.varint(commit)
            writer.varint(UInt64(entries.count))
            for entry in entries {
                writer.varint(entry.term)
                writer.varint(entry.index)
                writer.data(self.encode(entry.payload))
            }
        case .appendAccepted(let index):
            writer.tag(6)
            writer.varint(index)
        case .appendRejected(let rejected, let hintIndex, let hintTerm):
            writer.tag(7)
            writer.varint(rejected)
            writer.varint(hintIndex)
            writer.varint(hintTerm)
        case .heartbeat(let commit, let sequence):
            writer.tag(8)
            writer.varint(commit)
            writer.varint(sequence)
        case .heartbeatResponse(let sequence):
            writer.tag(9)
            writer.varint(sequence)
        case .snapshot(let snapshot):
            writer.tag(10)
            writer.varint(snapshot.metadata.index)
            writer.varint(snapshot.metadata.term)
            writer.data(self.encode(snapshot.metadata.configuration))
            writer.data(snapshot.data)
        case .timeoutNow:
            writer.tag(11)
        }
        return writer.bytes
    }

    public static func decodeMessage(_ bytes: [UInt8]) throws(DecodingError) -> RaftMessage {
        var reader = Reader(bytes)
        let version = try reader.byte()
        guard version == self.version else { throw DecodingError("unsupported message format \(version)") }
        let from = ReplicaID(try reader.varint())
        let to = ReplicaID(try reader.varint())
        let term = try reader.varint()
        let kind: RaftMessage.Kind
        switch try reader.byte() {
        case 1: kind = .preVote(lastLogIndex: try reader.varint(), lastLogTerm: try reader.varint())
        case 2: kind = .preVoteResponse(granted: try reader.bool())
        case 3:
            kind = .vote(
                lastLogIndex: try reader.varint(),
                lastLogTerm: try reader.varint(),
                transfer: try reader.bool()
            )
        case 4: kind = .voteResponse(granted: try reader.bool())
        case 5:
            let prevIndex = try reader.varint()
            let prevTerm = try reader.varint()
            let commit = try reader.varint()
            let count = try reader.count(minimumBytesEach: 3)
            var entries: [LogEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let term = try reader.varint()
                let index = try reader.varint()
                entries.append(LogEntry(term: term, index: index, payload: try self.decodePayload(try reader.data())))
            }
            kind = .append(prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, commit: commit)
        case 6: kind = .appendAccepted(index: try reader.varint())
        case 7:
            kind = .appendRejected(
                rejectedIndex: try reader.varint(),
                hintIndex: try reader.varint(),
                hintTerm: try reader.varint()
            )
        case 8: kind = .heartbeat(commit: try reader.varint(), readSequence: try reader.varint())
        case 9: kind = .heartbeatResponse(readSequence: try reader.varint())
        case 10:
            let index = try reader.varint()
            let snapshotTerm = try reader.varint()
            let configuration = try self.decodeConfiguration(try reader.data())
            let data = try reader.data()
            kind = .snapshot(
                Snapshot(
                    metadata: SnapshotMetadata(index: index, term: snapshotTerm, configuration: configuration),
                    data: data
                )
            )
        case 11: kind = .timeoutNow
        case let tag: throw DecodingError("unknown message kind \(tag)")
        }
        try reader.end()
        return RaftMessage(from: from, to: to, term: term, kind: kind)
    }

    // MARK: payloads and configurations

    public static func encode(_ payload: LogEntry.Payload) -> [UInt8] {
        var writer = Writer()
        switch payload {
        case .empty:
            writer.tag(0)
        case .command(let data):
            writer.tag(1)
            writer.bytes.append(contentsOf: data)
        case .configuration(let change, let configuration):
            writer.tag(2)
            switch change {
            case .addVoter(let id): writer.tag(1); writer.varint(id.rawValue)
            case .addLearner(let id): writer.tag(2); writer.varint(id.rawValue)
            case .promoteLearner(let id): writer.tag(3); writer.varint(id.rawValue)
            case .remove(let id): writer.tag(4); writer.varint(id.rawValue)
            }
            writer.bytes.append(contentsOf: self.encode(configuration))
        }
        return writer.bytes
    }

    public static func decodePayload(_ bytes: [UInt8]) throws(DecodingError) -> LogEntry.Payload {
        var reader = Reader(bytes)
        switch try reader.byte() {
        case 0:
            try reader.end()
            return .empty
        case 1:
            return .command(Array(bytes.dropFirst()))
        case 2:
            let tag = try reader.byte()
            let id = ReplicaID(try reader.varint())
            let change: ConfigurationChange
            switch tag {
            case 1: change = .addVoter(id)
            case 2: change = .addLearner(id)
            case 3: change = .promoteLearner(id)
            case 4: change = .remove(id)
            default: throw DecodingError("unknown configuration change \(tag)")
            }
            return .configuration(change, try self.decodeConfiguration(reader.rest()))
        case let kind:
            throw DecodingError("unknown entry kind \(kind)")
        }
    }

    /// Voters, then learners: a count and the ids of each.
    public static func encode(_ configuration: ClusterConfiguration) -> [UInt8] {
        var writer = Writer()
        for list in [configuration.voters, configuration.learners] {
            writer.varint(UInt64(list.count))
            for id in list { writer.varint(id.rawValue) }
        }
        return writer.bytes
    }

    public static func decodeConfiguration(_ bytes: [UInt8]) throws(DecodingError) -> ClusterConfiguration {
        var reader = Reader(bytes)
        var lists: [[ReplicaID]] = []
        for _ in 0..<2 {
            let count = try reader.count(minimumBytesEach: 1)
            var list: [ReplicaID] = []
            for _ in 0..<count { list.append(ReplicaID(try reader.varint())) }
            lists.append(list)
        }
        try reader.end()
        return ClusterConfiguration(voters: lists[0], learners: lists[1])
    }

    // MARK: primitives

    struct Writer {
        var bytes: [UInt8] = []

        mutating func tag(_ value: UInt8) { self.bytes.append(value) }
        mutating func bool(_ value: Bool) { self.bytes.append(value ? 1 : 0) }

        mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                self.bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            self.bytes.append(UInt8(value))
        }

        mutating func data(_ value: [UInt8]) {
            self.varint(UInt64(value.count))
            self.bytes.append(contentsOf: value)
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func byte() throws(DecodingError) -> UInt8 {
            guard self.offset < self.bytes.count else { throw DecodingError("truncated") }
            defer { self.offset += 1 }
            return self.bytes[self.offset]
        }

        mutating func bool() throws(DecodingError) -> Bool {
            switch try self.byte() {
            case 0: false
            case 1: true
            case let other: throw DecodingError("invalid boolean \(other)")
            }
        }

        mutating func varint() throws(DecodingError) -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: UInt64(0), to: 70, by: 7) {
                let byte = try self.byte()
                guard shift < 63 || byte <= 1 else { throw DecodingError("varint overflows 64 bits") }
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
            }
            throw DecodingError("varint too long")
        }

        /// A count of items that take at least `minimumBytesEach`: refused when the input cannot hold them.
        mutating func count(minimumBytesEach: Int) throws(DecodingError) -> Int {
            let count = try self.varint()
            guard count <= UInt64((self.bytes.count - self.offset) / minimumBytesEach) else {
                throw DecodingError("count \(count) exceeds the input")
            }
            return Int(count)
        }

        mutating func data() throws(DecodingError) -> [UInt8] {
            let length = try self.count(minimumBytesEach: 1)
            defer { self.offset += length }
            return Array(self.bytes[self.offset..<self.offset + length])
        }

        mutating func rest() -> [UInt8] {
            defer { self.offset = self.bytes.count }
            return Array(self.bytes[self.offset...])
        }

        func end() throws(DecodingError) {
            guard self.offset == self.bytes.count else { throw DecodingError("trailing bytes") }
        }
    }
}
