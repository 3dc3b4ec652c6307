import Directory
import Synchronization
import Testing

@testable import Node

@Suite("Proposal batcher")
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
                await Task.yield()
            }
        }
    }

    static func lock(_ names: String...) -> [DirectoryCommand] { names.map { .setLocked(name: $0, locked: true) } }

    @Test func proposalsMadeWhileABatchIsOutLeaveTogetherWithTheirOwnOutcomes() async throws {
        let batcher = ProposalBatcher(maxCommands: 10)
        let leader = Leader(holdFirst: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let first = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { await Task.yield() }
        let second = Task { try await batcher.propose(Self.lock("b", "xb"), submit: submit) }
        let third = Task { try await batcher.propose(Self.lock("xc"), submit: submit) }
        while batcher.queued < 2 { await Task.yield() }
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
        let batcher = ProposalBatcher(maxCommands: 3)
        let leader = Leader(holdFirst: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let first = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { await Task.yield() }
        let big = Task { try await batcher.propose(Self.lock("b1", "b2", "b3", "b4"), submit: submit) }
        while batcher.queued < 1 { await Task.yield() }
        let small = Task { try await batcher.propose(Self.lock("c"), submit: submit) }
        while batcher.queued < 2 { await Task.yield() }
        await leader.release()
        _ = try await (first.value, big.value, small.value)
        #expect(leader.batches.withLock { $0 } == [["a"], ["b1", "b2", "b3", "b4"], ["c"]])
    }

    @Test func aFailedBatchFailsEveryCallerInIt() async {
        let batcher = ProposalBatcher(maxCommands: 10)
        let leader = Leader(holdFirst: true, failing: true)
        let submit: ProposalBatcher.Submit = { commands async throws(NodeError) in try await leader.submit(commands) }
        let first = Task { try await batcher.propose(Self.lock("a"), submit: submit) }
        while leader.gate.withLock({ $0 == nil }) { await Task.yield() }
        let second = Task { try await batcher.propose(Self.lock("b"), submit: submit) }
        while batcher.queued < 1 { await Task.yield() }
        await leader.release()
        await #expect(throws: NodeError.self) { try await first.value }
        await #expect(throws: NodeError.self) { try await second.value }
        // The batcher goes on afterwards.
        let third = Task { try await batcher.propose(Self.lock("c"), submit: submit) }
        await #expect(throws: NodeError.self) { try await third.value }
        #expect(leader.batches.withLock { $0.count } == 3)
    }
}
