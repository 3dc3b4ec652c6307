import Testing

@testable import Node

@Suite("Checkpoint policy")
struct CheckpointPolicyTests {
    var policy = CheckpointPolicy(walLimit: 1000, idleAfter: .seconds(30))

    @Test mutating func aWALPastTheLimitIsCheckpointedOnceAtATime() {
        #expect(self.policy.due("a", walBytes: 999, idleFor: nil, now: .seconds(1)) == nil)
        #expect(self.policy.due("a", walBytes: 1000, idleFor: nil, now: .seconds(1)) == .walLimit)
        // In flight: not asked again.
        #expect(self.policy.due("a", walBytes: 5000, idleFor: nil, now: .seconds(2)) == nil)
        self.policy.finished("a", .done(walBytesAfter: 0))
        #expect(self.policy.due("a", walBytes: 1200, idleFor: nil, now: .seconds(2)) == .walLimit)
    }

    @Test mutating func anAttemptThatDidNotCompleteWaitsBeforeTheNext() {
        #expect(self.policy.due("a", walBytes: 2000, idleFor: nil, now: .seconds(10)) == .walLimit)
        self.policy.finished("a", .deferred)
        #expect(self.policy.due("a", walBytes: 2000, idleFor: nil, now: .seconds(12)) == nil)
        #expect(self.policy.due("a", walBytes: 2000, idleFor: nil, now: .seconds(15)) == .walLimit)
        self.policy.finished("a", .failed)
        #expect(self.policy.due("a", walBytes: 2000, idleFor: nil, now: .seconds(19)) == nil)
    }

    @Test mutating func anIdleNamespaceIsCheckpointedOnceUntilItWritesAgain() {
        #expect(self.policy.due("a", walBytes: 10, idleFor: .seconds(29), now: .seconds(29)) == nil)
        #expect(self.policy.due("a", walBytes: 0, idleFor: .seconds(60), now: .seconds(60)) == nil)
        #expect(self.policy.due("a", walBytes: 10, idleFor: .seconds(30), now: .seconds(30)) == .idle)
        self.policy.finished("a", .done(walBytesAfter: 0))
        #expect(self.policy.due("a", walBytes: 0, idleFor: .seconds(40), now: .seconds(40)) == nil)
        // Busy namespaces (a request in flight) are not idle.
        #expect(self.policy.due("a", walBytes: 10, idleFor: nil, now: .seconds(50)) == nil)
        #expect(self.policy.due("a", walBytes: 10, idleFor: .seconds(31), now: .seconds(81)) == .idle)
    }

    @Test mutating func stoppedBackendsAreForgotten() {
        #expect(self.policy.due("a", walBytes: 2000, idleFor: nil, now: .seconds(1)) == .walLimit)
        self.policy.finished("a", .failed)
        self.policy.retain([])
        #expect(self.policy.due("a", walBytes: 2000, idleFor: nil, now: .seconds(2)) == .walLimit)
    }
}
