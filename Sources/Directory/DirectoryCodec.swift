/// The binary form of a `DirectoryBatch` in a log entry: a format version, a command count, then each
/// command as a tag and its fields (varints, length-prefixed UTF-8 strings, presence bytes). Decoding
/// checks every length against the input and refuses anything else, so a corrupt entry is an error,
/// never a trap or a different command.
public enum DirectoryCodec {
    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Strings longer than this are refused (names are at most 253 bytes; this leaves room).
    static let maximumStringLength = 4096

    public static func encode(_ batch: DirectoryBatch) -> [UInt8] {
        var writer = Writer()
        writer.varint(UInt64(batch.format))
        writer.varint(UInt64(batch.commands.count))
        for command in batch.commands { writer.command(command) }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> DirectoryBatch {
        var reader = Reader(bytes: bytes)
        let format = try reader.varint()
        guard format <= UInt64(UInt32.max) else { throw DecodingError(description: "format out of range") }
        let count = try reader.varint()
        guard count <= UInt64(bytes.count) else { throw DecodingError(description: "command count exceeds the entry") }
        var commands: [DirectoryCommand] = []
        commands.reserveCapacity(Int(count))
        for _ in 0..<count { commands.append(try reader.command()) }
        guard reader.offset == bytes.count else { throw DecodingError(description: "trailing bytes") }
        return DirectoryBatch(format: UInt32(format), commands: commands)
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                self.bytes.append(UInt8(value & 0x7f) | 0x80)
                value >>= 7
            }
            self.bytes.append(UInt8(value))
        }

        mutating func string(_ value: String) {
            self.varint(UInt64(value.utf8.count))
            self.bytes.append(contentsOf: value.utf8)
        }

        mutating func bool(_ value: Bool) { self.bytes.append(value ? 1 : 0) }

        mutating func optional(_ value: UInt64?) {
            self.bool(value != nil)
            if let value { self.varint(value) }
        }

        mutating func strings(_ values: [String]) {
            self.varint(UInt64(values.count))
            for value in values { self.string(value) }
        }

        mutating func command(_ command: DirectoryCommand) {
            switch command {
            case .createNamespace(let name, let owner, let origin, let locked, let ttl, let createdAt, let followers):
                // Without followers, the tag every format knows.
                self.bytes.append(followers.isEmpty ? 1 : 14)
                self.string(name)
                self.string(owner)
                self.bytes.append(origin.rawValue)
                self.bool(locked)
                self.optional(ttl)
                self.varint(createdAt)
                if !followers.isEmpty { self.strings(followers) }
            case .setFollowers(let name, let epoch, let isrVersion, let followers):
                self.bytes.append(15)
                self.string(name)
                self.varint(epoch)
                self.varint(isrVersion)
                self.strings(followers)
            case .setInSync(let name, let epoch, let isrVersion, let inSync):
                self.bytes.append(16)
                self.string(name)
                self.varint(epoch)
                self.varint(isrVersion)
                self.strings(inSync)
            case .beginArchive(let name, let epoch):
                self.bytes.append(2)
                self.string(name)
                self.varint(epoch)
            case .finishArchive(let name, let epoch):
                self.bytes.append(3)
                self.string(name)
                self.varint(epoch)
            case .moveNamespace(let name, let epoch, let owner):
                self.bytes.append(4)
                self.string(name)
                self.varint(epoch)
                self.string(owner)
            case .guarded(let createdAt, let command):
                self.bytes.append(13)
                self.varint(createdAt)
                self.command(command)
            case .setLocked(let name, let locked):
                self.bytes.append(5)
                self.string(name)
                self.bool(locked)
            case .setTTL(let name, let ttl):
                self.bytes.append(6)
                self.string(name)
                self.optional(ttl)
            case .joinMember(let id, let storageID, let zone):
                self.bytes.append(7)
                self.string(id)
                self.string(storageID)
                self.string(zone)
            case .activateMember(let id, let storageID):
                self.bytes.append(8)
                self.string(id)
                self.string(storageID)
            case .leaveMember(let id, let storageID):
                self.bytes.append(9)
                self.string(id)
                self.string(storageID)
            case .leftMember(let id, let storageID):
                self.bytes.append(10)
                self.string(id)
                self.string(storageID)
            case .removeMember(let id):
                self.bytes.append(11)
                self.string(id)
            case .raiseFormat(let version):
                self.bytes.append(12)
                self.varint(UInt64(version))
            }
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func byte() throws(DecodingError) -> UInt8 {
            guard self.offset < self.bytes.count else { throw DecodingError(description: "truncated") }
            defer { self.offset += 1 }
            return self.bytes[self.offset]
        }

        mutating func varint() throws(DecodingError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = try self.byte()
                guard shift < 64, shift < 63 || byte <= 1 else { throw DecodingError(description: "varint too long") }
                result |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }

        mutating func string() throws(DecodingError) -> String {
            let length = try self.varint()
            guard length <= UInt64(DirectoryCodec.maximumStringLength),
                Int(length) <= self.bytes.count - self.offset
            else { throw DecodingError(description: "string length out of range") }
            let slice = self.bytes[self.offset..<(self.offset + Int(length))]
            self.offset += Int(length)
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw DecodingError(description: "string is not UTF-8")
            }
            return text
        }

        mutating func bool() throws(DecodingError) -> Bool {
            switch try self.byte() {
            case 0: return false
            case 1: return true
            default: throw DecodingError(description: "bad boolean")
            }
        }

        mutating func optional() throws(DecodingError) -> UInt64? {
            try self.bool() ? try self.varint() : nil
        }

        mutating func strings() throws(DecodingError) -> [String] {
            let count = try self.varint()
            guard count <= UInt64(self.bytes.count - self.offset) else {
                throw DecodingError(description: "list length out of range")
            }
            var values: [String] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<count { values.append(try self.string()) }
            return values
        }

        /// One command; a guarded command nests exactly one plain command (`depth` keeps garbage
        /// from nesting without end).
        mutating func command(depth: Int = 0) throws(DecodingError) -> DirectoryCommand {
            switch try self.byte() {
            case let tag where tag == 1 || tag == 14:
                let name = try self.string()
                let owner = try self.string()
                guard let origin = NamespaceEntry.Origin(rawValue: try self.byte()) else {
                    throw DecodingError(description: "bad origin")
                }
                let locked = try self.bool()
                let ttl = try self.optional()
                let createdAt = try self.varint()
                let followers = tag == 14 ? try self.strings() : []
                guard tag == 1 || !followers.isEmpty else { throw DecodingError(description: "empty follower list") }
                return .createNamespace(
                    name: name,
                    owner: owner,
                    origin: origin,
                    locked: locked,
                    ttlMilliseconds: ttl,
                    createdAt: createdAt,
                    followers: followers
                )
            case 15:
                return .setFollowers(
                    name: try self.string(),
                    epoch: try self.varint(),
                    isrVersion: try self.varint(),
                    followers: try self.strings()
                )
            case 16:
                return .setInSync(
                    name: try self.string(),
                    epoch: try self.varint(),
                    isrVersion: try self.varint(),
                    inSync: try self.strings()
                )
            case 2: return .beginArchive(name: try self.string(), epoch: try self.varint())
            case 3: return .finishArchive(name: try self.string(), epoch: try self.varint())
            case 4: return .moveNamespace(name: try self.string(), epoch: try self.varint(), owner: try self.string())
            case 5: return .setLocked(name: try self.string(), locked: try self.bool())
            case 6: return .setTTL(name: try self.string(), ttlMilliseconds: try self.optional())
            case 7: return .joinMember(id: try self.string(), storageID: try self.string(), zone: try self.string())
            case 8: return .activateMember(id: try self.string(), storageID: try self.string())
            case 9: return .leaveMember(id: try self.string(), storageID: try self.string())
            case 10: return .leftMember(id: try self.string(), storageID: try self.string())
            case 11: return .removeMember(id: try self.string())
            case 12:
                let version = try self.varint()
                guard version <= UInt64(UInt32.max) else { throw DecodingError(description: "format out of range") }
                return .raiseFormat(version: UInt32(version))
            case 13 where depth == 0:
                let createdAt = try self.varint()
                return .guarded(createdAt: createdAt, try self.command(depth: depth + 1))
            case let tag:
                throw DecodingError(description: "unknown command tag \(tag)")
            }
        }
    }
}
