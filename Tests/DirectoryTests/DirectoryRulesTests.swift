import Testing

@testable import Directory

@Suite("Directory rules")
struct DirectoryRulesTests {
    /// A directory with active members `n1`, `n2` (storage ids `s1`, `s2`) at index 1.
    static func directory() -> DirectoryState {
        var state = DirectoryState()
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                .joinMember(id: "n1", storageID: "s1", zone: "a"), .activateMember(id: "n1", storageID: "s1"),
                .joinMember(id: "n2", storageID: "s2", zone: "b"), .activateMember(id: "n2", storageID: "s2"),
            ]),
            at: 1
        )
        #expect(outcomes == Array(repeating: .applied, count: 4))
        return state
    }

    static func create(_ name: String, owner: String = "n1") -> DirectoryCommand {
        .createNamespace(name: name, owner: owner, origin: .explicit, locked: true, ttlMilliseconds: nil, createdAt: 7)
    }

    @Test func aNameExistsOnceInAnyState() {
        var state = Self.directory()
        #expect(
            state.apply(DirectoryBatch(commands: [Self.create("app"), Self.create("app")]), at: 2)
                == [.applied, .refused(.namespaceExists(.active))]
        )
        #expect(state.owner(of: "app")! == ("n1", 1))
        #expect(state.apply(DirectoryBatch(commands: [.beginArchive(name: "app", epoch: 1)]), at: 3) == [.applied])
        #expect(state.owner(of: "app") == nil)
        #expect(
            state.apply(DirectoryBatch(commands: [Self.create("app")]), at: 4)
                == [.refused(.namespaceExists(.archiving))]
        )
        #expect(
            state.apply(DirectoryBatch(commands: [.finishArchive(name: "app", epoch: 1), Self.create("app")]), at: 5)
                == [.applied, .applied]
        )
    }

    @Test func createsNeedAValidNameAndAnActiveOwner() {
        var state = Self.directory()
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                Self.create("Bad.Name"), Self.create("_state"), Self.create(String(repeating: "a", count: 64)),
                Self.create("x", owner: "ghost"), .joinMember(id: "n3", storageID: "s3", zone: "c"),
                Self.create("y", owner: "n3"),
            ]),
            at: 2
        )
        #expect(
            outcomes == [
                .refused(.invalidName), .refused(.invalidName), .refused(.invalidName), .refused(.noSuchMember),
                .applied,
                .refused(.memberNotActive),
            ]
        )
        #expect(state.namespaces.isEmpty)
    }

    @Test func movesAreCompareAndSetOnTheEpoch() {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [Self.create("app")]), at: 2)
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                .moveNamespace(name: "app", epoch: 1, owner: "n2"), .moveNamespace(name: "app", epoch: 1, owner: "n1"),
                .moveNamespace(name: "app", epoch: 2, owner: "ghost"),
            ]),
            at: 3
        )
        #expect(outcomes == [.applied, .refused(.epochMismatch(current: 2)), .refused(.noSuchMember)])
        #expect(state.owner(of: "app")! == ("n2", 2))
    }

    @Test func aWipedDiskIsNotItsOldSelfAndARemovedStorageNeverReturns() {
        var state = Self.directory()
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                .joinMember(id: "n1", storageID: "s1", zone: "a"), .joinMember(id: "n1", storageID: "wiped", zone: "a"),
                .activateMember(id: "n1", storageID: "wiped"), .removeMember(id: "n1"),
                .joinMember(id: "n1", storageID: "s1", zone: "a"), .joinMember(id: "n1", storageID: "new", zone: "a"),
            ]),
            at: 2
        )
        #expect(
            outcomes == [
                .applied, .refused(.storageMismatch), .refused(.storageMismatch), .applied, .refused(.memberRemoved),
                .applied,
            ]
        )
        // The node id came back with a new data directory: a new member, joining, owning nothing;
        // the removed identity stays recorded and is refused for good.
        #expect(state.members["n1"] == MemberEntry(id: "n1", storageID: "new", zone: "a", state: .joining))
        #expect(state.members[DirectoryState.retiredKey("n1", "s1")]?.state == .removed)
        #expect(
            state.apply(DirectoryBatch(commands: [.joinMember(id: "n1", storageID: "s1", zone: "a")]), at: 3) == [
                .refused(.memberRemoved)
            ]
        )
        #expect(state.activeMembers.map(\.id) == ["n2"])
    }

    @Test func aMemberLeavesOnlyOnceItOwnsNothing() {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [Self.create("app")]), at: 2)
        let outcomes = state.apply(
            DirectoryBatch(commands: [
                .leaveMember(id: "n1", storageID: "s1"), Self.create("new", owner: "n1"),
                .leftMember(id: "n1", storageID: "s1"), .moveNamespace(name: "app", epoch: 1, owner: "n2"),
                .leftMember(id: "n1", storageID: "s1"), .joinMember(id: "n1", storageID: "s1", zone: "a"),
            ]),
            at: 3
        )
        #expect(
            outcomes == [
                .applied, .refused(.memberNotActive), .refused(.invalidTransition), .applied, .applied, .applied,
            ]
        )
        #expect(state.members["n1"]?.state == .joining)
    }

    @Test func anUnknownFormatHaltsApplyingAndReplaysAreIgnored() {
        var state = Self.directory()
        #expect(state.apply(DirectoryBatch(commands: [Self.create("a")]), at: 1) == nil)  // replayed index
        // A raise to rules this build knows applies once; again (or lower) it is refused.
        #expect(state.apply(DirectoryBatch(commands: [.raiseFormat(version: 2)]), at: 2) == [.applied])
        #expect(state.format == 2)
        #expect(
            state.apply(DirectoryBatch(commands: [.raiseFormat(version: 2)]), at: 3)
                == [.refused(.formatNotRaised(current: 2))]
        )
        // A raise to rules it does not know carries them: this build halts there, never half applies.
        let unknown = DirectoryState.supportedFormat + 1
        #expect(DirectoryBatch(commands: [.raiseFormat(version: unknown)]).format == unknown)
        #expect(state.apply(DirectoryBatch(commands: [.raiseFormat(version: unknown)]), at: 4) == nil)
        #expect(state.haltedAt?.index == 4 && state.haltedAt?.format == unknown)
        #expect(state.apply(DirectoryBatch(commands: [Self.create("b")]), at: 5) == nil)
        #expect(state.namespaces.isEmpty && state.appliedIndex == 3 && state.format == 2)
    }

    /// A snapshot of rules this build does not know is never taken: the directory halts there.
    @Test func aSnapshotOfAnUnknownFormatHaltsInsteadOfBeingTaken() {
        var state = Self.directory()
        let known = DirectoryState(namespaces: [:], members: [:], format: 2, appliedIndex: 9, haltedAt: nil)
        let haltsBeforeKnown = state.halts(before: known, at: 9)
        #expect(!haltsBeforeKnown)
        #expect(state.haltedAt == nil)
        let unknown = DirectoryState(
            namespaces: [:],
            members: [:],
            format: DirectoryState.supportedFormat + 1,
            appliedIndex: 9,
            haltedAt: nil
        )
        let before = state.members
        let haltsBeforeUnknown = state.halts(before: unknown, at: 9)
        #expect(haltsBeforeUnknown)
        #expect(state.haltedAt?.index == 9 && state.haltedAt?.format == DirectoryState.supportedFormat + 1)
        #expect(state.members == before && state.appliedIndex == 1)
    }

    @Test func membersAnnounceTheirFormatAsBuildMetadataOfTheirVersion() {
        #expect(DirectoryFormat.announcing("0.1.0", format: 3) == "0.1.0+directory.3")
        #expect(DirectoryFormat.announced(in: "0.1.0+directory.3") == 3)
        #expect(DirectoryFormat.announced(in: "1.2.3+sha.abc.directory.7.x") == 7)
        // Builds that announce nothing (or garbage) know the baseline every log build applies.
        for version in ["0.1.0", "", "0.1.0+", "0.1.0+directory", "0.1.0+directory.x", "0.1.0+directory."] {
            #expect(DirectoryFormat.announced(in: version) == DirectoryFormat.baseline)
        }
        #expect(DirectoryFormat.usable(raised: 1) == DirectoryFormat.baseline)
        #expect(DirectoryFormat.usable(raised: 5) == 5)
    }

    /// A guarded command names the namespace's incarnation: one meant for an archived namespace never
    /// moves a later one of the same name. It needs format 2, so a build that only knows format 1
    /// halts on it instead of misapplying it.
    @Test func aGuardedCommandAppliesOnlyToItsIncarnation() {
        var state = Self.directory()
        _ = state.apply(DirectoryBatch(commands: [Self.create("app")]), at: 2)
        let createdAt = state.namespaces["app"]!.createdAt
        let batch = DirectoryBatch(commands: [
            .guarded(createdAt: createdAt + 1, .moveNamespace(name: "app", epoch: 1, owner: "n2")),
            .guarded(createdAt: createdAt, .moveNamespace(name: "app", epoch: 1, owner: "n2")),
            .guarded(createdAt: createdAt, .moveNamespace(name: "app", epoch: 1, owner: "n1")),
        ])
        #expect(batch.format == 2)
        #expect(DirectoryBatch(commands: [Self.create("x")]).format == 1)
        #expect(
            state.apply(batch, at: 3) == [.refused(.noSuchNamespace), .applied, .refused(.epochMismatch(current: 2))]
        )
        #expect(state.owner(of: "app")! == ("n2", 2))
        // A reclaim by a leaving owner still applies (a plain move to a leaving member does not).
        let leaving = state.apply(
            DirectoryBatch(commands: [
                .leaveMember(id: "n2", storageID: "s2"),
                .guarded(createdAt: createdAt, .moveNamespace(name: "app", epoch: 2, owner: "n2")),
                .moveNamespace(name: "app", epoch: 3, owner: "n2"),
            ]),
            at: 4
        )
        #expect(leaving == [.applied, .applied, .refused(.memberNotActive)])
        #expect(state.owner(of: "app")! == ("n2", 3))
    }
}

@Suite("Outcome codec")
struct OutcomeCodecTests {
    @Test func everyOutcomeRoundTripsAndGarbageIsRefused() throws {
        let outcomes: [DirectoryOutcome] = [
            .applied, .refused(.namespaceExists(.active)), .refused(.namespaceExists(.archiving)),
            .refused(.noSuchNamespace), .refused(.epochMismatch(current: 1 << 40)), .refused(.namespaceNotActive),
            .refused(.invalidName), .refused(.noSuchMember), .refused(.memberNotActive), .refused(.storageMismatch),
            .refused(.memberRemoved), .refused(.invalidTransition), .refused(.formatNotRaised(current: 7)),
        ]
        let bytes = DirectoryCodec.encode(outcomes)
        #expect(try DirectoryCodec.decodeOutcomes(bytes) == outcomes)
        #expect(try DirectoryCodec.decodeOutcomes(DirectoryCodec.encode([DirectoryOutcome]())) == [])
        for garbage in [[], Array(bytes.dropLast()), bytes + [0], [1, 1, 99], [2, 0, 3]] as [[UInt8]] {
            #expect(throws: DirectoryCodec.DecodingError.self) { try DirectoryCodec.decodeOutcomes(garbage) }
        }
    }
}
