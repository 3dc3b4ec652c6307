import Consensus
import Foundation
import Testing

@testable import Ownership

@Suite("Ownership simulation")
struct OwnershipSimulationTests {
    static var seeds: Int { Int(ProcessInfo.processInfo.environment["OWNERSHIP_SEEDS"] ?? "") ?? 2000 }
    static let steps = 600
    static var start: UInt64 { UInt64(ProcessInfo.processInfo.environment["OWNERSHIP_SEED_START"] ?? "") ?? 1 }

    /// Every seed keeps one writer per namespace and loses no acknowledged write.
    @Test func seededRunsKeepOneWriterAndEveryAcknowledgedWrite() {
        var writes = 0
        var moves = 0
        var reclaims = 0
        for seed in Self.start..<(Self.start + UInt64(Self.seeds)) {
            var simulation = OwnershipSimulation(seed: seed, nodes: 3 + Int(seed % 2))
            do {
                try simulation.run(steps: Self.steps)
            } catch {
                Issue.record("seed \(seed): \(error)\n\(simulation.trace.suffix(40).joined(separator: "\n"))")
                return
            }
            writes += simulation.writesAcknowledged
            moves += simulation.movesApplied
            reclaims += simulation.reclaimsApplied
        }
        print(
            "ownership simulation: \(Self.seeds) seeds, \(writes) writes acknowledged, \(moves) moves, \(reclaims) reclaims"
        )
        // The runs do what they are meant to: writes, moves and reclaims all happen.
        #expect(writes > Self.seeds * 5)
        #expect(moves > Self.seeds / 4)
        #expect(reclaims > Self.seeds / 20)
    }

    /// The checks bite: each rule removed makes some seed fail.
    @Test(arguments: [OwnershipMachine.Mutation.unfenceOnUnknownOutcome, .skipFence, .archiveOnlyWhenIdle])
    func aBrokenRuleFailsSomeSeed(_ mutation: OwnershipMachine.Mutation) {
        for seed in UInt64(1)...3000 {
            var simulation = OwnershipSimulation(seed: seed, nodes: 3, mutations: [mutation])
            if (try? simulation.run(steps: Self.steps)) == nil { return }
        }
        Issue.record("no seed caught \(mutation)")
    }

    /// Replays one seed with its trace (OWNERSHIP_REPLAY_SEED=n).
    @Test func replayOneSeed() throws {
        guard let text = ProcessInfo.processInfo.environment["OWNERSHIP_REPLAY_SEED"], let seed = UInt64(text) else {
            return
        }
        var simulation = OwnershipSimulation(seed: seed, nodes: 3 + Int(seed % 2))
        defer { print(simulation.trace.joined(separator: "\n")) }
        try simulation.run(steps: Self.steps)
    }
}
