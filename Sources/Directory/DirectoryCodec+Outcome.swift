/// The binary form of the outcomes of one applied batch, as a leader answers a proposal a member
/// forwarded to it: a count, then each outcome as a tag and, for a refusal, its reason and fields.
extension DirectoryCodec {
    public static func encode(_ outcomes: [DirectoryOutcome]) -> [UInt8] {
        var writer = Writer()
        writer.varint(UInt64(outcomes.count))
        for outcome in outcomes {
            switch outcome {
            case .applied:
                writer.bytes.append(0)
            case .refused(let refusal):
                writer.bytes.append(1)
                writer.refusal(refusal)
            }
        }
        return writer.bytes
    }

    public static func decodeOutcomes(_ bytes: [UInt8]) throws(DecodingError) -> [DirectoryOutcome] {
        var reader = Reader(bytes: bytes)
        let count = try reader.varint()
        guard count <= UInt64(bytes.count) else { throw DecodingError(description: "outcome count exceeds the input") }
        var outcomes: [DirectoryOutcome] = []
        for _ in 0..<count {
            switch try reader.byte() {
            case 0: outcomes.append(.applied)
            case 1: outcomes.append(.refused(try reader.refusal()))
            case let tag: throw DecodingError(description: "unknown outcome tag \(tag)")
            }
        }
        guard reader.offset == bytes.count else { throw DecodingError(description: "trailing bytes") }
        return outcomes
    }
}

extension DirectoryCodec.Writer {
    mutating func refusal(_ refusal: DirectoryRefusal) {
        switch refusal {
        case .namespaceExists(let state):
            self.bytes.append(1)
            self.bytes.append(state.rawValue)
        case .noSuchNamespace: self.bytes.append(2)
        case .epochMismatch(let current):
            self.bytes.append(3)
            self.varint(current)
        case .namespaceNotActive: self.bytes.append(4)
        case .invalidName: self.bytes.append(5)
        case .noSuchMember: self.bytes.append(6)
        case .memberNotActive: self.bytes.append(7)
        case .storageMismatch: self.bytes.append(8)
        case .memberRemoved: self.bytes.append(9)
        case .invalidTransition: self.bytes.append(10)
        case .formatNotRaised(let current):
            self.bytes.append(11)
            self.varint(UInt64(current))
        case .isrVersionMismatch(let current):
            self.bytes.append(12)
            self.varint(current)
        }
    }
}

extension DirectoryCodec.Reader {
    mutating func refusal() throws(DirectoryCodec.DecodingError) -> DirectoryRefusal {
        switch try self.byte() {
        case 1:
            let raw = try self.byte()
            guard let state = NamespaceEntry.State(rawValue: raw) else {
                throw DirectoryCodec.DecodingError(description: "unknown namespace state \(raw)")
            }
            return .namespaceExists(state)
        case 2: return .noSuchNamespace
        case 3: return .epochMismatch(current: try self.varint())
        case 4: return .namespaceNotActive
        case 5: return .invalidName
        case 6: return .noSuchMember
        case 7: return .memberNotActive
        case 8: return .storageMismatch
        case 9: return .memberRemoved
        case 10: return .invalidTransition
        case 11:
            let current = try self.varint()
            guard current <= UInt64(UInt32.max) else {
                throw DirectoryCodec.DecodingError(description: "format out of range")
            }
            return .formatNotRaised(current: UInt32(current))
        case 12: return .isrVersionMismatch(current: try self.varint())
        case let tag: throw DirectoryCodec.DecodingError(description: "unknown refusal tag \(tag)")
        }
    }
}
