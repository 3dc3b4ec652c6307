import Consensus

/// The stored form of a Raft entry's payload and of a configuration: a kind byte, then fixed-width
/// little-endian integers. Decoding checks every length, so a damaged row is an error, never a trap.
enum RaftEntryCodec {
    struct DecodingError: Error, CustomStringConvertible {
        var description: String
    }

    static func encode(_ payload: LogEntry.Payload) -> [UInt8] {
        var bytes: [UInt8] = []
        switch payload {
        case .empty:
            bytes.append(0)
        case .command(let data):
            bytes.append(1)
            bytes.append(contentsOf: data)
        case .configuration(let change, let configuration):
            bytes.append(2)
            let (tag, id): (UInt8, ReplicaID) =
                switch change {
                case .addVoter(let id): (1, id)
                case .addLearner(let id): (2, id)
                case .promoteLearner(let id): (3, id)
                case .remove(let id): (4, id)
                }
            bytes.append(tag)
            append(id.rawValue, to: &bytes)
            bytes.append(contentsOf: self.encode(configuration))
        }
        return bytes
    }

    static func decodePayload(_ bytes: [UInt8]) throws(DecodingError) -> LogEntry.Payload {
        guard let kind = bytes.first else { throw DecodingError(description: "empty payload") }
        switch kind {
        case 0:
            guard bytes.count == 1 else { throw DecodingError(description: "trailing bytes after an empty entry") }
            return .empty
        case 1:
            return .command(Array(bytes.dropFirst()))
        case 2:
            guard bytes.count >= 10 else { throw DecodingError(description: "short configuration entry") }
            let id = ReplicaID(read(bytes, at: 2))
            let change: ConfigurationChange
            switch bytes[1] {
            case 1: change = .addVoter(id)
            case 2: change = .addLearner(id)
            case 3: change = .promoteLearner(id)
            case 4: change = .remove(id)
            default: throw DecodingError(description: "unknown configuration change \(bytes[1])")
            }
            return .configuration(change, try self.decodeConfiguration(Array(bytes[10...])))
        default:
            throw DecodingError(description: "unknown entry kind \(kind)")
        }
    }

    /// Voter count, voters, learner count, learners (8 bytes each).
    static func encode(_ configuration: ClusterConfiguration) -> [UInt8] {
        var bytes: [UInt8] = []
        for list in [configuration.voters, configuration.learners] {
            append(UInt64(list.count), to: &bytes)
            for id in list { append(id.rawValue, to: &bytes) }
        }
        return bytes
    }

    static func decodeConfiguration(_ bytes: [UInt8]) throws(DecodingError) -> ClusterConfiguration {
        var offset = 0
        var lists: [[ReplicaID]] = []
        for _ in 0..<2 {
            guard bytes.count >= offset + 8 else { throw DecodingError(description: "short configuration") }
            let count = read(bytes, at: offset)
            offset += 8
            guard count <= UInt64((bytes.count - offset) / 8) else {
                throw DecodingError(description: "configuration count exceeds its bytes")
            }
            lists.append((0..<Int(count)).map { ReplicaID(read(bytes, at: offset + 8 * $0)) })
            offset += 8 * Int(count)
        }
        guard offset == bytes.count else { throw DecodingError(description: "trailing bytes after a configuration") }
        return ClusterConfiguration(voters: lists[0], learners: lists[1])
    }

    private static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private static func read(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << UInt64(8 * $1) }
    }
}
