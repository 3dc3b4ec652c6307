import Synchronization
import Testing

@testable import Node

@Suite("Deferred observer")
struct DeferredObserverTests {
    final class Seen: Sendable {
        let batches = Mutex<[Set<String>]>([])
    }

    /// Changes before the observer is attached are handed over at attach, once; later ones go
    /// straight through.
    @Test func changesBeforeAttachingAreNotMissed() async {
        let observer = DeferredObserver()
        await observer.changed(["a", "b"])
        await observer.changed(["b", "c"])
        let seen = Seen()
        await observer.attach { names in seen.batches.withLock { $0.append(names) } }
        #expect(seen.batches.withLock { $0 } == [["a", "b", "c"]])
        await observer.changed(["d"])
        #expect(seen.batches.withLock { $0 } == [["a", "b", "c"], ["d"]])
    }

    @Test func nothingMissedMeansNothingHandedOverAtAttach() async {
        let observer = DeferredObserver()
        let seen = Seen()
        await observer.attach { names in seen.batches.withLock { $0.append(names) } }
        #expect(seen.batches.withLock { $0 }.isEmpty)
    }
}
