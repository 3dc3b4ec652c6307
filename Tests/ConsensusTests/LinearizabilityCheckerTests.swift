import Testing

@Suite("Linearizability checker")
struct LinearizabilityCheckerTests {
    typealias Entry = LinearizabilityChecker.Entry
    static let slot1 = Directory.Slot(owner: 1, epoch: 1)
    static let slot2 = Directory.Slot(owner: 2, epoch: 2)

    static func entry(
        _ id: Int,
        _ operation: Directory.Operation,
        _ call: UInt64,
        _ response: UInt64?,
        _ result: Directory.Result?
    ) -> Entry {
        Entry(id: id, key: 0, operation: operation, call: call, response: response, result: result)
    }

    @Test func sequentialHistoryFollowingTheSpecificationIsLinearizable() {
        let history = [
            Self.entry(0, .create(owner: 1), 1, 2, .ok),
            Self.entry(1, .get, 3, 4, .value(Self.slot1)),
            Self.entry(2, .move(owner: 2, expectedEpoch: 1), 5, 6, .ok),
            Self.entry(3, .create(owner: 3), 7, 8, .failed),
        ]
        #expect(LinearizabilityChecker.check(history) == .linearizable)
    }

    @Test func aStaleReadAfterACompletedWriteIsNot() {
        let history = [
            Self.entry(0, .create(owner: 1), 1, 2, .ok),
            Self.entry(1, .move(owner: 2, expectedEpoch: 1), 3, 4, .ok),
            Self.entry(2, .get, 5, 6, .value(Self.slot1)),
        ]
        #expect(LinearizabilityChecker.check(history) == .notLinearizable(key: 0))
    }

    @Test func concurrentOperationsMayTakeEffectInEitherOrder() {
        let history = [
            Self.entry(0, .create(owner: 1), 1, 2, .ok),
            Self.entry(1, .move(owner: 2, expectedEpoch: 1), 3, 8, .ok),
            Self.entry(2, .get, 4, 5, .value(Self.slot1)),
            Self.entry(3, .get, 6, 7, .value(Self.slot2)),
        ]
        #expect(LinearizabilityChecker.check(history) == .linearizable)
        // ...but a read cannot go back in time once another has seen the write.
        let reversed = history + [Self.entry(4, .get, 9, 10, .value(Self.slot1))]
        #expect(LinearizabilityChecker.check(reversed) == .notLinearizable(key: 0))
    }

    @Test func anUnansweredWriteMayHaveHappenedOrNot() {
        let happened = [
            Self.entry(0, .create(owner: 1), 1, nil, nil),
            Self.entry(1, .get, 5, 6, .value(Self.slot1)),
        ]
        let didNot = [
            Self.entry(0, .create(owner: 1), 1, nil, nil),
            Self.entry(1, .get, 5, 6, .value(nil)),
        ]
        #expect(LinearizabilityChecker.check(happened) == .linearizable)
        #expect(LinearizabilityChecker.check(didNot) == .linearizable)
        // Not both: once observed, it cannot be undone.
        #expect(
            LinearizabilityChecker.check(happened + [Self.entry(2, .get, 7, 8, .value(nil))])
                == .notLinearizable(key: 0)
        )
    }
}
