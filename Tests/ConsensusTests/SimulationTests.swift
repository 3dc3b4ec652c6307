import Testing

@testable import Consensus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seeds of the deterministic simulation. Every CI run covers `CONSENSUS_SEEDS` seeds (default
/// 10,000) starting at `CONSENSUS_SEED_START` (default 1); to run a million locally:
///
///     CONSENSUS_SEEDS=1000000 CONSENSUS_SEED_START=1000000 swift test --filter SimulationTests.manySeeds
///
/// A failure prints its seed and the end of its event log; `CONSENSUS_REPLAY_SEED=<seed>` prints
/// the log of one seed (add `CONSENSUS_MUTATIONS=<raw value>` to replay a mutation run), and
/// `CONSENSUS_HUNT=1 CONSENSUS_MUTATIONS=<raw value>` counts the seeds of the range that catch a
/// mutation (raw values: 1 commitOldTermEntries, 2 grantVoteWithoutLogCheck, 4 skipLeaderNoop,
/// 8 readWithoutHeartbeatQuorum, 16 addedVoterStartsCaughtUp; add them to combine). Add
/// `CONSENSUS_CLASSIC_PROFILE=1` to pin the profile as the figure-8 mutation test does (see
/// `RaftSimulation.Options.classicProfile`).
@Suite("Raft simulation")
struct SimulationTests {
    static func environment(_ name: String) -> UInt64? {
        guard let value = getenv(name) else { return nil }
        return UInt64(String(cString: value))
    }

    static let seedCount = environment("CONSENSUS_SEEDS") ?? 10_000
    static let seedStart = environment("CONSENSUS_SEED_START") ?? 1
    static let chunks = 8

    /// The violation of one seed, with the event log of a traced replay.
    static func report(
        seed: UInt64,
        mutations: RaftConfiguration.Mutations = [],
        classicProfile: Bool = false,
        tail: Int = 80
    ) -> String {
        let simulation = RaftSimulation(
            .init(seed: seed, mutations: mutations, classicProfile: classicProfile, trace: true)
        )
        let violation = simulation.run() ?? "no violation"
        let events = simulation.events.suffix(tail).joined(separator: "\n")
        return """
            seed \(seed) (mutations \(mutations.rawValue)): \(violation)
            profile: \(simulation.profile)
            replay: CONSENSUS_REPLAY_SEED=\(seed) CONSENSUS_MUTATIONS=\(mutations.rawValue)\
            \(classicProfile ? " CONSENSUS_CLASSIC_PROFILE=1" : "") swift test --filter replayOneSeed
            last events:
            \(events)
            """
    }

    @Test(arguments: 0..<chunks)
    func manySeedsKeepEveryInvariant(chunk: Int) {
        let clock = ContinuousClock()
        let started = clock.now
        var totals = RaftSimulation.Stats()
        var seeds = 0
        // Answered client operations per initial voter count and per (preVote, checkQuorum): every
        // profile must make progress, or its safety checks would pass vacuously.
        var answeredByVoters = Array(repeating: 0, count: RaftSimulation.nodeCount + 1)
        var answeredBySwitches = [0, 0, 0, 0]
        var seed = Self.seedStart + UInt64(chunk)
        while seed < Self.seedStart + Self.seedCount {
            let simulation = RaftSimulation(.init(seed: seed))
            if simulation.run() != nil {
                Issue.record("\(Self.report(seed: seed))")
                return
            }
            seeds += 1
            totals.completed += simulation.stats.completed
            totals.maybe += simulation.stats.maybe
            totals.elections += simulation.stats.elections
            totals.snapshotsSent += simulation.stats.snapshotsSent
            totals.configurationChanges += simulation.stats.configurationChanges
            totals.crashes += simulation.stats.crashes
            totals.inconclusive += simulation.stats.inconclusive
            totals.votersAdded += simulation.stats.votersAdded
            totals.leaderRemovals += simulation.stats.leaderRemovals
            totals.lateMessages += simulation.stats.lateMessages
            answeredByVoters[simulation.initialVoters] += simulation.stats.completed
            answeredBySwitches[(simulation.preVote ? 2 : 0) + (simulation.checkQuorum ? 1 : 0)] +=
                simulation.stats.completed
            seed += UInt64(Self.chunks)
        }
        let elapsed = (clock.now - started).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        print(
            "chunk \(chunk): \(seeds) seeds (\(Int(Double(seeds) / max(seconds, 0.001))) seeds/s), \(totals.completed) client operations answered, \(totals.maybe) maybe, "
                + "\(totals.elections) elections, \(totals.crashes) crashes, \(totals.snapshotsSent) snapshots sent, "
                + "\(totals.configurationChanges) configuration changes applied, "
                + "\(totals.inconclusive) inconclusive histories, \(totals.votersAdded) voters added directly, "
                + "\(totals.leaderRemovals) leaders removed themselves, \(totals.lateMessages) messages ≥ 100 ms late; "
                + "answered by initial voters \(answeredByVoters.dropFirst()), by (preVote, checkQuorum) \(answeredBySwitches)"
        )
        #expect(totals.completed > seeds * 10)
        #expect(totals.configurationChanges > seeds / 2)
        if seeds >= 200 {
            #expect(answeredByVoters.dropFirst().allSatisfy { $0 > 0 })
            #expect(answeredBySwitches.allSatisfy { $0 > 0 })
            #expect(totals.votersAdded > 0 && totals.leaderRemovals > 0 && totals.lateMessages > 0)
        }
    }

    /// Seeds that once failed, replayed on every run (profiles are drawn from the seed, so a
    /// seed pins its whole scenario). 5008217, 5002914, 5007275, 5075584, 5063412, 5012270,
    /// 5029053, 5027191: a single voter led on an unpersisted vote and, after a crash, led the
    /// same term again with another entry at a position it had handed out (log matching).
    @Test(
        arguments: [5_008_217, 5_002_914, 5_007_275, 5_075_584, 5_063_412, 5_012_270, 5_029_053, 5_027_191] as [UInt64]
    )
    func formerlyFailingSeedsPass(seed: UInt64) {
        let simulation = RaftSimulation(.init(seed: seed))
        #expect(simulation.run() == nil, "\(Self.report(seed: seed))")
    }

    @Test func aSeedReplaysIdentically() {
        func trace(_ seed: UInt64) -> [String] {
            let simulation = RaftSimulation(.init(seed: seed, trace: true))
            _ = simulation.run()
            return simulation.events + ["\(simulation.eventCount)"]
        }
        let first = trace(7)
        #expect(first == trace(7))
        #expect(first != trace(8))
    }

    /// Figure 8 needs the leader's no-op out of the way: with it, an older-term entry almost always
    /// travels with (or behind) an entry of the leader's term, and `commitOldTermEntries` alone
    /// survived 22,000 seeds; without it, the same bug is caught within a few dozen.
    /// It also needs the classic profile (a LAN majority of three or five): over the drawn profiles
    /// it was caught by 2 of 6,000 seeds, over the classic one by 13 of the first 2,000 (the
    /// simulation before profiles: 9 of 1,000).
    static let mutations: [(name: String, mutations: RaftConfiguration.Mutations, classicProfile: Bool)] = [
        ("commitOldTermEntries+skipLeaderNoop", [.commitOldTermEntries, .skipLeaderNoop], true),
        ("grantVoteWithoutLogCheck", [.grantVoteWithoutLogCheck], false),
        ("readWithoutHeartbeatQuorum", [.readWithoutHeartbeatQuorum], false),
        // Only direct voter additions reach it: never caught on the classic profile (0 of 2,000).
        ("addedVoterStartsCaughtUp", [.addedVoterStartsCaughtUp], false),
    ]

    /// The checks bite: each deliberate bug is caught by some seed within a small budget.
    @Test(arguments: 0..<mutations.count)
    func eachMutationIsCaught(index: Int) {
        let (name, mutations, classicProfile) = Self.mutations[index]
        for seed in UInt64(1)...2_000 {
            let simulation = RaftSimulation(.init(seed: seed, mutations: mutations, classicProfile: classicProfile))
            if let violation = simulation.run() {
                print("mutation \(name): caught by seed \(seed): \(violation)")
                return
            }
        }
        Issue.record("mutation \(name) survived 2,000 seeds")
    }

    /// The crash model bites too: a shell that sends before its write is durable loses votes and
    /// acknowledged entries in crashes, which some seed turns into a violation.
    @Test func aShellThatSendsBeforePersistingIsCaught() {
        for seed in UInt64(1)...2_000 {
            let simulation = RaftSimulation(.init(seed: seed, sendBeforePersist: true))
            if let violation = simulation.run() {
                print("send-before-persist shell: caught by seed \(seed): \(violation)")
                return
            }
        }
        Issue.record("a shell sending before persisting survived 2,000 seeds")
    }

    @Test(.enabled(if: environment("CONSENSUS_REPLAY_SEED") != nil))
    func replayOneSeed() {
        let seed = Self.environment("CONSENSUS_REPLAY_SEED")!
        let mutations = RaftConfiguration.Mutations(rawValue: UInt8(Self.environment("CONSENSUS_MUTATIONS") ?? 0))
        let classicProfile = Self.environment("CONSENSUS_CLASSIC_PROFILE") != nil
        print(Self.report(seed: seed, mutations: mutations, classicProfile: classicProfile, tail: 400))
    }
}

extension SimulationTests {
    /// How often a mutation is caught (to size the budget of `eachMutationIsCaught`).
    @Test(.enabled(if: environment("CONSENSUS_HUNT") != nil))
    func huntMutation() {
        let mutations = RaftConfiguration.Mutations(rawValue: UInt8(Self.environment("CONSENSUS_MUTATIONS") ?? 1))
        var caught: [UInt64] = []
        for seed in Self.seedStart..<(Self.seedStart + Self.seedCount) {
            let sendBeforePersist = Self.environment("CONSENSUS_SEND_BEFORE_PERSIST") != nil
            let classicProfile = Self.environment("CONSENSUS_CLASSIC_PROFILE") != nil
            let simulation = RaftSimulation(
                .init(
                    seed: seed,
                    mutations: mutations,
                    sendBeforePersist: sendBeforePersist,
                    classicProfile: classicProfile
                )
            )
            if simulation.run() != nil { caught.append(seed) }
        }
        print(
            "HUNT mutations \(mutations.rawValue): \(caught.count) of \(Self.seedCount) seeds caught: \(caught.prefix(20))"
        )
    }
}
