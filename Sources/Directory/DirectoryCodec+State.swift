extension DirectoryCodec {
    /// The whole directory as a Raft snapshot's data: a marker byte, format, applied index, halt,
    /// then every namespace and member (sorted, so equal directories encode equally). From format 3
    /// a namespace row ends with its followers, in-sync followers and ISR version; before, it has
    /// none, so a snapshot of a directory not raised yet is what earlier builds send and read.
    public static func encode(_ state: DirectoryState) -> [UInt8] {
        var sorted = state.namespaces.values.sorted(by: { $0.name < $1.name }).makeIterator()
        return Self.encode(state, namespaceCount: state.namespaces.count) { sorted.next() }
    }

    /// The same, with the namespace rows pulled from `next` (in name order, exactly
    /// `namespaceCount` of them, then nil) from wherever they are kept, instead of from memory.
    public static func encode<Failure: Error>(
        _ state: DirectoryState,
        namespaceCount: Int,
        next: () throws(Failure) -> NamespaceEntry?
    ) throws(Failure) -> [UInt8] {
        var writer = Writer()
        writer.bytes.append(0xD5)
        writer.varint(UInt64(state.format))
        writer.varint(state.appliedIndex)
        writer.bool(state.haltedAt != nil)
        if let halted = state.haltedAt {
            writer.varint(halted.index)
            writer.varint(UInt64(halted.format))
        }
        writer.varint(UInt64(namespaceCount))
        while let entry = try next() {
            writer.string(entry.name)
            writer.bytes.append(entry.state.rawValue)
            writer.string(entry.owner)
            writer.varint(entry.epoch)
            writer.bytes.append(entry.origin.rawValue)
            writer.bool(entry.locked)
            writer.optional(entry.ttlMilliseconds)
            writer.varint(entry.createdAt)
            if state.format >= 3 {
                writer.strings(entry.followers)
                writer.strings(entry.inSync)
                writer.varint(entry.isrVersion)
            }
        }
        writer.varint(UInt64(state.members.count))
        for member in state.members.values.sorted(by: { $0.id < $1.id }) {
            writer.string(member.id)
            writer.string(member.storageID)
            writer.string(member.zone)
            writer.bytes.append(member.state.rawValue)
        }
        return writer.bytes
    }

    public static func decodeState(_ bytes: [UInt8]) throws(DecodingError) -> DirectoryState {
        var reader = Reader(bytes: bytes)
        guard try reader.byte() == 0xD5 else { throw DecodingError(description: "not a directory snapshot") }
        let format = try reader.varint()
        guard format <= UInt64(UInt32.max) else { throw DecodingError(description: "format out of range") }
        let applied = try reader.varint()
        var halted: (index: UInt64, format: UInt32)?
        if try reader.bool() {
            let index = try reader.varint()
            let haltFormat = try reader.varint()
            guard haltFormat <= UInt64(UInt32.max) else { throw DecodingError(description: "format out of range") }
            halted = (index, UInt32(haltFormat))
        }
        var namespaces: [String: NamespaceEntry] = [:]
        for _ in 0..<(try reader.count()) {
            let name = try reader.string()
            guard let state = NamespaceEntry.State(rawValue: try reader.byte()) else {
                throw DecodingError(description: "bad namespace state")
            }
            let owner = try reader.string()
            let epoch = try reader.varint()
            guard let origin = NamespaceEntry.Origin(rawValue: try reader.byte()) else {
                throw DecodingError(description: "bad origin")
            }
            var entry = NamespaceEntry(
                name: name,
                state: state,
                owner: owner,
                epoch: epoch,
                origin: origin,
                locked: try reader.bool(),
                ttlMilliseconds: try reader.optional(),
                createdAt: try reader.varint()
            )
            if format >= 3 {
                entry.followers = try reader.strings()
                entry.inSync = try reader.strings()
                entry.isrVersion = try reader.varint()
            }
            namespaces[name] = entry
        }
        var members: [String: MemberEntry] = [:]
        for _ in 0..<(try reader.count()) {
            let id = try reader.string()
            let storageID = try reader.string()
            let zone = try reader.string()
            guard let state = MemberEntry.State(rawValue: try reader.byte()) else {
                throw DecodingError(description: "bad member state")
            }
            members[id] = MemberEntry(id: id, storageID: storageID, zone: zone, state: state)
        }
        guard reader.offset == bytes.count else { throw DecodingError(description: "trailing bytes") }
        return DirectoryState(
            namespaces: namespaces,
            members: members,
            format: UInt32(format),
            appliedIndex: applied,
            haltedAt: halted
        )
    }
}

extension DirectoryCodec.Reader {
    /// A count of items of at least one byte each, refused when the input cannot hold them.
    mutating func count() throws(DirectoryCodec.DecodingError) -> Int {
        let count = try self.varint()
        guard count <= UInt64(self.bytes.count - self.offset) else {
            throw DirectoryCodec.DecodingError(description: "count exceeds the input")
        }
        return Int(count)
    }
}

extension DirectoryCodec {
    /// A namespace's replica set as one value (a shell's row column): nil when it has none.
    public static func encodeReplicas(of entry: NamespaceEntry) -> [UInt8]? {
        guard !entry.followers.isEmpty || !entry.inSync.isEmpty || entry.isrVersion != 0 else { return nil }
        var writer = Writer()
        writer.strings(entry.followers)
        writer.strings(entry.inSync)
        writer.varint(entry.isrVersion)
        return writer.bytes
    }

    /// Sets `entry`'s replica set from `encodeReplicas`' bytes.
    public static func decodeReplicas(_ bytes: [UInt8], into entry: inout NamespaceEntry) throws(DecodingError) {
        var reader = Reader(bytes: bytes)
        entry.followers = try reader.strings()
        entry.inSync = try reader.strings()
        entry.isrVersion = try reader.varint()
        guard reader.offset == bytes.count else { throw DecodingError(description: "trailing bytes") }
    }
}
