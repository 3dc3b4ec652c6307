import Testing

@testable import Directory

/// A small seeded generator (SplitMix64): tests must not depend on process-seeded randomness.
struct Seeded: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Directory determinism and codec")
struct DirectoryDeterminismTests {
    static func randomCommand(_ random: inout Seeded) -> DirectoryCommand {
        let names = ["a", "b", "app-1", "x_y", "Bad"]
        let members = ["n1", "n2", "n3", "ghost"]
        let storage = ["s1", "s2", "s3", "other"]
        let name = names.randomElement(using: &random)!
        let member = members.randomElement(using: &random)!
        let epoch = UInt64.random(in: 0...4, using: &random)
        func someMembers() -> [String] { members.filter { _ in random.next() % 3 == 0 } }
        switch random.next() % 15 {
        case 0:
            return .createNamespace(
                name: name,
                owner: member,
                origin: Bool.random(using: &random) ? .auto : .explicit,
                locked: Bool.random(using: &random),
                ttlMilliseconds: Bool.random(using: &random) ? nil : random.next() >> 20,
                createdAt: random.next() % 3,
                followers: random.next() % 2 == 0 ? [] : someMembers()
            )
        case 12:
            return .setFollowers(name: name, epoch: epoch, isrVersion: random.next() % 3, followers: someMembers())
        case 13:
            return .setInSync(name: name, epoch: epoch, isrVersion: random.next() % 3, inSync: someMembers())
        case 1: return .beginArchive(name: name, epoch: epoch)
        case 2: return .finishArchive(name: name, epoch: epoch)
        case 3: return .moveNamespace(name: name, epoch: epoch, owner: member)
        case 4: return .setLocked(name: name, locked: Bool.random(using: &random))
        case 5: return .setTTL(name: name, ttlMilliseconds: Bool.random(using: &random) ? nil : 60_000)
        case 6: return .joinMember(id: member, storageID: storage.randomElement(using: &random)!, zone: "z")
        case 7: return .activateMember(id: member, storageID: storage.randomElement(using: &random)!)
        case 8: return .leaveMember(id: member, storageID: storage.randomElement(using: &random)!)
        case 9: return .leftMember(id: member, storageID: storage.randomElement(using: &random)!)
        case 10:
            return random.next() % 4 == 0 ? .removeMember(id: member) : .activateMember(id: member, storageID: "s1")
        case 11:
            return .guarded(
                createdAt: random.next() % 3,
                random.next() % 2 == 0
                    ? .moveNamespace(name: name, epoch: epoch, owner: member) : .beginArchive(name: name, epoch: epoch)
            )
        default: return .raiseFormat(version: UInt32(random.next() % 4))
        }
    }

    /// Two nodes applying the same log (one reading it back from the codec) hold the same directory
    /// and see the same outcomes, whatever the commands.
    @Test(arguments: 0..<200)
    func replicasApplyingOneLogAgree(seed: UInt64) throws {
        var random = Seeded(state: seed)
        var left = DirectoryState()
        var right = DirectoryState()
        for index in 1...40 {
            let batch = DirectoryBatch(commands: (0..<Int(random.next() % 6)).map { _ in Self.randomCommand(&random) })
            let decoded = try DirectoryCodec.decode(DirectoryCodec.encode(batch))
            #expect(decoded == batch)
            #expect(left.apply(batch, at: UInt64(index)) == right.apply(decoded, at: UInt64(index)))
            #expect(left == right, "seed \(seed) index \(index)")
            for entry in left.namespaces.values where entry.state == .active {
                #expect(left.members[entry.owner] != nil, "an owner is always a known member")
                #expect(Set(entry.inSync).isSubset(of: entry.followers), "the in-sync followers are followers")
                #expect(!entry.followers.contains(entry.owner), "the owner is not its own follower")
                #expect(Set(entry.followers).count == entry.followers.count)
            }
        }
    }

    /// A node that keeps the rows on disk and loads only the rows each batch names (then persists
    /// them and drops them from memory) holds the same directory as one that keeps it whole: same
    /// outcomes, rows, counts by owner, and the same snapshot bytes when the rows are streamed.
    @Test(arguments: 0..<200)
    func applyingWithOnlyTheNamedRowsLoadedAgrees(seed: UInt64) throws {
        var random = Seeded(state: seed)
        var whole = DirectoryState()
        var partial = DirectoryState()
        var disk: [String: NamespaceEntry] = [:]
        for index in 1...40 {
            let batch = DirectoryBatch(commands: (0..<Int(random.next() % 6)).map { _ in Self.randomCommand(&random) })
            partial.load(batch.namespaceNames.compactMap { disk[$0] })
            #expect(whole.apply(batch, at: UInt64(index)) == partial.apply(batch, at: UInt64(index)))
            for name in batch.namespaceNames { disk[name] = partial.namespaces[name] }
            partial.unload()
            #expect(disk == whole.namespaces, "seed \(seed) index \(index)")
            #expect(partial.ownedCounts == whole.ownedCounts && partial.namespaceCount == disk.count)
            #expect(partial == whole.unloaded)
        }
        var rows = disk.values.sorted { $0.name < $1.name }.makeIterator()
        let streamed = DirectoryCodec.encode(partial, namespaceCount: disk.count) { rows.next() }
        #expect(streamed == DirectoryCodec.encode(whole))
    }

    /// A replica that installs a snapshot (the encoded directory) midway and applies the rest of the
    /// log ends equal to one that applied all of it; every truncated snapshot is refused.
    @Test(arguments: 0..<100)
    func aSnapshotRestoresTheSameDirectory(seed: UInt64) throws {
        var random = Seeded(state: seed)
        var full = DirectoryState()
        var restored: DirectoryState?
        let cut = 1 + Int(random.next() % 30)
        for index in 1...40 {
            let batch = DirectoryBatch(commands: (0..<Int(random.next() % 6)).map { _ in Self.randomCommand(&random) })
            _ = full.apply(batch, at: UInt64(index))
            if index == cut {
                let bytes = DirectoryCodec.encode(full)
                restored = try DirectoryCodec.decodeState(bytes)
                #expect(restored == full)
                for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 50)) {
                    #expect(throws: DirectoryCodec.DecodingError.self) {
                        try DirectoryCodec.decodeState(Array(bytes.prefix(length)))
                    }
                }
            } else if index > cut {
                _ = restored!.apply(batch, at: UInt64(index))
            }
        }
        #expect(restored == full, "seed \(seed)")
    }

    /// Garbage, truncations and flipped bytes decode to an error or to some batch: never a trap.
    @Test func decodingCorruptEntriesNeverTraps() {
        var random = Seeded(state: 42)
        let valid = DirectoryCodec.encode(
            DirectoryBatch(commands: (0..<20).map { _ in Self.randomCommand(&random) })
        )
        for _ in 0..<5000 {
            var bytes = valid
            switch random.next() % 3 {
            case 0: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
            case 1: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            default: bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            _ = try? DirectoryCodec.decode(bytes)
        }
        #expect(throws: DirectoryCodec.DecodingError.self) { try DirectoryCodec.decode(valid + [0]) }
        #expect(throws: DirectoryCodec.DecodingError.self) {
            try DirectoryCodec.decode([1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        }
    }
}
