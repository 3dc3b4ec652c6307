import Directory
import Synchronization
import Testing

@testable import Node

@Suite("Proposal batcher", .serialized)
struct ProposalBatcherTests {
    /// A submit function that records each batch and holds the first until released.
    final class Leader: Sendable {
        let batches = Mutex<[[String]]>([])
        let gate = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let holdFirst: Bool
        let failing: Bool

        init(holdFirst: Bool, failing: Bool = false) {
            self.holdFirst = holdFirst
            self.failing = failing
        }

        func submit(_ commands: [DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome] {
            let names = commands.map { command -> String in
                guard case .setLocked(let name, _) = command else { return "?" }
                return name
            }
            let first = self.batches.withLock { batches in
                batches.append(names)
                return batches.count == 1
            }
            if first && self.holdFirst {
                await withCheckedContinuation { continuation in self.gate.withLock { $0 = continuation } }
            }
            if self.failing { throw NodeError(.ownerUnavailable, "outcome unknown", status: 503) }
            // Refused for names starting with "x": outcomes must reach the right caller.
            return names.map { $0.hasPrefix("x") ? .refused(.noSuchNamespace) : .applied }
        }

        func release() async {
            while true {
                if let continuation = self.gate.withLock({ $0.take() }) {
                    continuation.resume()
                    return
                }
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    static func lock(_ names: String...) -> [DirectoryCommand] { names.map { .setLocked(name: $0, locked: true) } }

    @Test func proposalsMadeWhileABatchIsOutLeaveTogetherWithTheirOwnOutcomes() async throws {
        let batcher = ProposalBatcher(maxCommands: 10, stall: .seconds(600))
        let leader = Leader(holdFirst: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let first = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(1)) }
        let second = Task { try await batcher.propose(Self.lock("b", "xb"), submit: submit) }
        let third = Task { try await batcher.propose(Self.lock("xc"), submit: submit) }
        while batcher.queued < 2 { try await Task.sleep(for: .milliseconds(1)) }
        await leader.release()
        #expect(try await first.value == [.applied])
        #expect(try await second.value == [.applied, .refused(.noSuchNamespace)])
        #expect(try await third.value == [.refused(.noSuchNamespace)])
        let batches = leader.batches.withLock { $0 }
        #expect(batches.count == 2)
        #expect(batches.first == ["a"])
        #expect(Set(batches.last ?? []) == ["b", "xb", "xc"])
    }

    @Test func aBatchNeverExceedsTheCapUnlessOneCallerAskedForMore() async throws {
        let batcher = ProposalBatcher(maxCommands: 3, stall: .seconds(600))
        let leader = Leader(holdFirst: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let first = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(1)) }
        let big = Task { try await batcher.propose(Self.lock("b1", "b2", "b3", "b4"), submit: submit) }
        while batcher.queued < 1 { try await Task.sleep(for: .milliseconds(1)) }
        let small = Task { try await batcher.propose(Self.lock("c"), submit: submit) }
        while batcher.queued < 2 { try await Task.sleep(for: .milliseconds(1)) }
        await leader.release()
        _ = try await (first.value, big.value, small.value)
        #expect(leader.batches.withLock { $0 } == [["a"], ["b1", "b2", "b3", "b4"], ["c"]])
    }

    @Test func aFailedBatchFailsEveryCallerInIt() async throws {
        let batcher = ProposalBatcher(maxCommands: 10, stall: .seconds(600))
        let leader = Leader(holdFirst: true, failing: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let first = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(1)) }
        let second = Task { try await batcher.propose(Self.lock("b"), submit: submit) }
        while batcher.queued < 1 { try await Task.sleep(for: .milliseconds(1)) }
        await leader.release()
        await #expect(throws: NodeError.self) { try await first.value }
        await #expect(throws: NodeError.self) { try await second.value }
        // The batcher goes on afterwards.
        let third = Task { try await batcher.propose(Self.lock("c"), submit: submit) }
        await #expect(throws: NodeError.self) { try await third.value }
        #expect(leader.batches.withLock { $0.count } == 3)
    }

    /// A batch that hangs (a leader gone mid-request) holds the others up for `stall` at most.
    @Test func proposalsQueuedBehindAStuckBatchLeaveOnTheirOwnAfterTheStall() async throws {
        let batcher = ProposalBatcher(maxCommands: 10, stall: .milliseconds(50))
        let leader = Leader(holdFirst: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let stuck = Task { try await batcher.propose(Self.lock("stuck"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(1)) }
        // The first batch stays out; these two leave without it (together or one by one).
        async let second = batcher.propose(Self.lock("b"), submit: submit)
        async let third = batcher.propose(Self.lock("xc"), submit: submit)
        #expect(try await second == [.applied])
        #expect(try await third == [.refused(.noSuchNamespace)])
        #expect(leader.batches.withLock { $0.first } == ["stuck"])
        await leader.release()
        #expect(try await stuck.value == [.applied])
    }

    /// Callers left behind a full batch that hangs too leave on their own after another stall.
    @Test func callersLeftBehindAFullBatchThatHangsLeaveAfterAnotherStall() async throws {
        final class Hanging: Sendable {
            let batches = Mutex<[[String]]>([])
            func submit(_ commands: [DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome] {
                let count = self.batches.withLock { batches in
                    batches.append(commands.map { "\($0)" })
                    return batches.count
                }
                // The first two batches never come back (until the test ends).
                if count <= 2 { try? await Task.sleep(for: .seconds(600)) }
                return commands.map { _ in .applied }
            }
        }
        let batcher = ProposalBatcher(maxCommands: 2, stall: .milliseconds(50))
        let leader = Hanging()
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        _ = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.batches.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(1)) }
        final class Count: Sendable { let value = Mutex(0) }
        let answered = Count()
        for index in 0..<3 {
            Task {
                _ = try await batcher.propose(Self.lock("q\(index)"), submit: submit)
                answered.value.withLock { $0 += 1 }
            }
        }
        // Two of the three leave after the first stall (and hang); the third after the next one.
        let deadline = ContinuousClock.now + .seconds(20)
        while answered.value.withLock({ $0 }) < 1 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(answered.value.withLock { $0 } == 1)
        #expect(leader.batches.withLock { $0.map(\.count) } == [1, 2, 1])
    }
}
