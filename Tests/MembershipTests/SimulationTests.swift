import ClusterTestKit
import Membership
import Testing

/// Multi-node properties in the deterministic simulator (virtual time: simulated minutes take
/// milliseconds). Each test prints its figures; a failure prints the seed and the event log.
@Suite("Membership simulation", .serialized)
struct SimulationTests {
    static func percentile(_ values: [Duration], _ p: Double) -> Duration {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded(.up)))]
    }

    static func seconds(_ d: Duration) -> String {
        let (s, atto) = d.components
        let ms = atto / 1_000_000_000_000_000
        return "\(s).\(ms < 10 ? "00" : ms < 100 ? "0" : "")\(ms)s"
    }

    /// Time from `crash` until every other node marks the crashed node dead.
    static func detectionTime(count: Int, seed: UInt64, loss: Double = 0) -> (Duration?, SimulatedCluster) {
        var options = SimulatedCluster.Options()
        options.loss = loss
        let cluster = SimulatedCluster(count: count, seed: seed, options: options)
        cluster.startConverged()
        cluster.run(for: .seconds(3))
        var generator = SplitMix64(seed: seed)
        let victim = cluster.ids[Int(generator.next() % UInt64(count))]
        cluster.crash(victim)
        let others = cluster.ids.filter { $0 != victim }
        let elapsed = cluster.run(
            until: { c in others.allSatisfy { c.status(of: victim, seenBy: $0) == .dead } },
            timeout: .seconds(60)
        )
        return (elapsed, cluster)
    }

    @Test func sameSeedSameHistory() {
        func history(_ seed: UInt64) -> [String] {
            var options = SimulatedCluster.Options()
            options.loss = 0.05
            let cluster = SimulatedCluster(count: 12, seed: seed, options: options)
            var log: [String] = []
            cluster.onStatusChange = { change in
                log.append("\(change.time) \(change.observer) \(change.subject) \(change.status) \(change.incarnation)")
            }
            cluster.startAll()
            cluster.run(for: .seconds(5))
            cluster.crash(cluster.ids[3])
            cluster.pause(cluster.ids[5])
            cluster.run(for: .seconds(8))
            cluster.resume(cluster.ids[5])
            cluster.run(for: .seconds(5))
            log.append("sent \(cluster.messagesSent) dropped \(cluster.messagesDropped)")
            log.append(cluster.ids.map { cluster.machine($0)?.view.description ?? "-" }.joined(separator: "|"))
            return log
        }
        let first = history(99)
        #expect(first == history(99))
        #expect(first != history(100))
        #expect(first.count > 50)
    }

    @Test func hundredNodesStartedTogetherFromOneSeedFormOneCluster() {
        let cluster = SimulatedCluster(count: 100, seed: 1)
        cluster.startAll()
        let elapsed = cluster.run(
            until: { c in
                c.ids.allSatisfy { c.machine($0)!.liveCount == 100 } && c.viewsAgree(among: c.ids)
            },
            timeout: .seconds(60),
            every: 10
        )
        print("100 nodes from one seed: one cluster with identical views after \(elapsed.map(Self.seconds) ?? "never")")
        #expect(elapsed != nil, "\(cluster.report("no single cluster"))")
    }

    /// Crash of one node detected by every member: p99 bound per cluster size (5 s at N = 100, 8 s at
    /// N = 1000), over `seeds` independent runs.
    @Test(arguments: [(100, UInt64(20), Duration.seconds(5)), (1000, UInt64(3), Duration.seconds(8))])
    func crashIsDetectedByEveryMember(count: Int, seeds: UInt64, bound: Duration) {
        var times: [Duration] = []
        for seed in UInt64(1)...seeds {
            let (elapsed, cluster) = Self.detectionTime(count: count, seed: seed)
            guard let elapsed else {
                Issue.record("\(cluster.report("crash not detected by everyone within 60 s"))")
                return
            }
            times.append(elapsed)
        }
        let p50 = Self.percentile(times, 0.5)
        let p99 = Self.percentile(times, 0.99)
        print(
            "crash detection by every member, N=\(count), \(seeds) seeds: p50 \(Self.seconds(p50)), p99 \(Self.seconds(p99))"
        )
        #expect(p99 <= bound)
    }

    @Test func aPausedNodeRemovesNobodyAndRecoversQuickly() {
        let cluster = SimulatedCluster(count: 50, seed: 77)
        var deadSeen: [SimulatedCluster.StatusChange] = []
        cluster.onStatusChange = { change in if change.status == .dead { deadSeen.append(change) } }
        cluster.startConverged()
        cluster.run(for: .seconds(5))
        let paused = cluster.ids[17]
        cluster.pause(paused)
        cluster.run(for: .seconds(10))
        cluster.resume(paused)
        let recovered = cluster.run(
            until: { c in c.ids.allSatisfy { c.status(of: paused, seenBy: $0) == .alive } },
            timeout: .seconds(10),
            every: 1
        )
        cluster.run(for: .seconds(5))
        let othersRemoved = deadSeen.filter { $0.subject != paused }
        print(
            "10 s pause of one node (N=50): recovered everywhere \(recovered.map(Self.seconds) ?? "never") after resuming; "
                + "\(othersRemoved.count) other members declared dead"
        )
        #expect(othersRemoved.isEmpty, "\(cluster.report("the pause removed other members"))")
        #expect(recovered != nil && recovered! <= .seconds(1), "\(cluster.report("slow recovery"))")
        #expect(cluster.viewsAgree(among: cluster.ids))
    }

    @Test(arguments: [100, 1000])
    func updatesSpreadInLogarithmicRounds(count: Int) {
        var options = SimulatedCluster.Options()
        options.loss = 0.05
        let cluster = SimulatedCluster(count: count, seed: UInt64(count), options: options)
        cluster.startConverged()
        cluster.run(for: .seconds(2))
        var rounds: [Int] = []
        var converge: [Duration] = []
        for trial in 0..<(count >= 1000 ? 2 : 10) {
            // A member changes its metadata (as when it turns from joining to active).
            let subject = cluster.ids[(trial * 37) % count]
            let started = cluster.now
            cluster.updateMetadata(subject) { $0.version = "v\(trial)" }
            let target = cluster.machine(subject)!.me.incarnation
            let elapsed = cluster.run(
                until: { c in c.ids.allSatisfy { c.machine($0)!.state(of: subject)!.incarnation >= target } },
                timeout: .seconds(30),
                every: 1
            )
            guard let elapsed else {
                Issue.record("\(cluster.report("update did not reach everyone"))")
                return
            }
            let interval = cluster.options.configuration.gossipInterval
            rounds.append(Int((elapsed / interval).rounded(.up)))
            let agreed = cluster.run(until: { $0.viewsAgree(among: $0.ids) }, timeout: .seconds(30), every: 1)
            converge.append((cluster.now - started))
            #expect(agreed != nil)
        }
        var log2 = 0
        while (1 << log2) < count { log2 += 1 }
        print(
            "N=\(count), 5% loss: update reached all in \(rounds) gossip rounds (bound \(log2 + 3)); "
                + "identical views p99 \(Self.seconds(Self.percentile(converge, 0.99)))"
        )
        #expect(rounds.allSatisfy { $0 <= log2 + 3 })
        #expect(Self.percentile(converge, 0.99) <= .seconds(2))
    }

    @Test func aDayLongPartitionHealsByItself() {
        var options = SimulatedCluster.Options()
        options.step = .milliseconds(100)
        let cluster = SimulatedCluster(count: 20, seed: 2024, options: options)
        cluster.startConverged()
        cluster.run(for: .seconds(5))
        let left = Array(cluster.ids.prefix(10))
        let right = Array(cluster.ids.suffix(10))
        cluster.partition(left, right)
        // 24 h of simulated time, every node ticking throughout.
        cluster.run(for: .seconds(24 * 3600))
        #expect(left.allSatisfy { cluster.status(of: right[0], seenBy: $0) == .dead })
        cluster.heal()
        let healed = cluster.run(
            until: { c in
                c.ids.allSatisfy { observer in c.ids.allSatisfy { c.status(of: $0, seenBy: observer) == .alive } }
            },
            timeout: .seconds(120),
            every: 1
        )
        print(
            "24 h partition of 20 nodes into 10 | 10: healed \(healed.map(Self.seconds) ?? "never") after the network healed"
        )
        #expect(healed != nil && healed! <= .seconds(20), "\(cluster.report("partition did not heal"))")
    }

    @Test func oneWayPartitionDoesNotSplitTheCluster() {
        let cluster = SimulatedCluster(count: 10, seed: 5)
        cluster.startConverged()
        cluster.run(for: .seconds(3))
        cluster.partition([cluster.ids[0]], [cluster.ids[1]], oneWay: true)
        cluster.run(for: .seconds(60))
        // Indirect probes route around a single broken link: nobody is declared dead.
        let everyoneAlive = cluster.ids.allSatisfy { observer in
            cluster.ids.allSatisfy { cluster.status(of: $0, seenBy: observer) == .alive }
        }
        #expect(everyoneAlive, "\(cluster.report("a one-way link failure removed a member"))")
    }

    @Test func restartWithTheSameIdRejoinsAtOnce() {
        let cluster = SimulatedCluster(count: 20, seed: 11)
        cluster.startConverged()
        cluster.run(for: .seconds(3))
        let node = cluster.ids[7]
        cluster.crash(node)
        cluster.run(for: .seconds(1))
        cluster.start(node, seeds: [cluster.address(of: cluster.ids[0])])
        let back = cluster.run(
            until: { c in c.ids.allSatisfy { c.status(of: node, seenBy: $0) == .alive } && c.viewsAgree(among: c.ids) },
            timeout: .seconds(10),
            every: 1
        )
        #expect(back != nil && back! <= .seconds(3), "\(cluster.report("restart was not accepted"))")
    }

    /// The first member (started without seeds) stops gracefully and restarts, again without
    /// seeds: the others keep retrying the addresses of members that departed, so it is found.
    @Test(arguments: [false, true])
    func aSeedlessMemberThatDepartedIsFoundAgainWhenItRestarts(graceful: Bool) {
        let cluster = SimulatedCluster(count: 5, seed: 17)
        cluster.startConverged()
        cluster.run(for: .seconds(3))
        let first = cluster.ids[0]
        let others = Array(cluster.ids.dropFirst())
        if graceful {
            cluster.leave(first)
            cluster.run(for: .seconds(1))
        }
        cluster.crash(first)
        let departed = cluster.run(
            until: { c in others.allSatisfy { [.dead, .left].contains(c.status(of: first, seenBy: $0)) } },
            timeout: .seconds(60)
        )
        #expect(departed != nil)
        cluster.start(first, seeds: [])
        let back = cluster.run(
            until: { c in c.ids.allSatisfy { c.status(of: first, seenBy: $0) == .alive } && c.viewsAgree(among: c.ids)
            },
            timeout: .seconds(60),
            every: 1
        )
        #expect(back != nil, "\(cluster.report("a departed seedless member was not found again"))")
    }

    @Test func twoProcessesWithOneIdAreReported() {
        let cluster = SimulatedCluster(count: 6, seed: 3)
        cluster.startConverged()
        cluster.run(for: .seconds(2))
        // A second process claims node-0002's id from another address.
        cluster.startImpostor(of: cluster.ids[2], at: "10.9.9.9:7946")
        cluster.run(for: .seconds(10))
        #expect(!cluster.conflicts.isEmpty)
    }

    /// An operator forgets a dead member on one node: every member comes to see it as left. A live
    /// member cannot be forgotten; one that was only cut off refutes the announcement once it is
    /// reachable again.
    @Test(arguments: Array(UInt64(1)...20))
    func forgettingADeadMemberSpreadsAndALiveOneRefutes(seed: UInt64) {
        let cluster = SimulatedCluster(count: 5, seed: seed)
        cluster.startConverged()
        let (victim, observer) = (cluster.ids[1], cluster.ids[0])
        let others = cluster.ids.filter { $0 != victim }
        #expect(!cluster.forget(victim, by: observer), "an alive member is not forgotten")
        let cutOff = seed % 2 == 0
        if cutOff { cluster.partition([victim], others) } else { cluster.crash(victim) }
        let dead = cluster.run(
            until: { c in others.allSatisfy { c.status(of: victim, seenBy: $0) == .dead } },
            timeout: .seconds(60)
        )
        #expect(dead != nil, "\(cluster.report("not dead"))")
        #expect(cluster.forget(victim, by: observer))
        let left = cluster.run(
            until: { c in others.allSatisfy { c.status(of: victim, seenBy: $0) == .left } },
            timeout: .seconds(30)
        )
        #expect(left != nil, "\(cluster.report("the forget did not spread"))")
        guard cutOff else { return }
        cluster.heal()
        let back = cluster.run(
            until: { c in others.allSatisfy { c.status(of: victim, seenBy: $0) == .alive } },
            timeout: .seconds(60)
        )
        #expect(back != nil, "\(cluster.report("the live member did not refute"))")
    }

    /// Many seeds, small clusters, random faults: after the faults stop, every running member is
    /// alive in every view and all views agree.
    @Test(arguments: Array(UInt64(1)...1000))
    func randomFaultsAlwaysConverge(seed: UInt64) {
        var options = SimulatedCluster.Options()
        options.loss = 0.05
        options.step = .milliseconds(50)
        let cluster = SimulatedCluster(count: 5, seed: seed, options: options)
        cluster.startAll()
        var random = SplitMix64(seed: seed)
        cluster.run(for: .seconds(3))
        let victim = cluster.ids[Int(random.next() % 5)]
        switch random.next() % 4 {
        case 0: cluster.crash(victim)
        case 1: cluster.pause(victim)
        case 2: cluster.partition([victim], cluster.ids.filter { $0 != victim })
        default: cluster.leave(victim)
        }
        cluster.run(for: .seconds(Int64(2 + random.next() % 6)))
        cluster.heal()
        if !cluster.isRunning(victim) { cluster.start(victim) }
        cluster.resume(victim)
        let live = cluster.ids.filter { id in cluster.machine(id).map { $0.me.status == .alive } ?? false }
        let converged = cluster.run(
            until: { c in
                c.viewsAgree(among: live)
                    && live.allSatisfy { observer in live.allSatisfy { c.status(of: $0, seenBy: observer) == .alive } }
            },
            timeout: .seconds(60),
            every: 2
        )
        #expect(converged != nil, "\(cluster.report("no convergence"))")
    }
}
