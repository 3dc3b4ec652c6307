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

    @Test func crashIsDetectedByEveryMemberAt100Nodes() {
        var times: [Duration] = []
        for seed in UInt64(1)...20 {
            let (elapsed, cluster) = Self.detectionTime(count: 100, seed: seed)
            guard let elapsed else {
                Issue.record("\(cluster.report("crash not detected by everyone within 60 s"))")
                return
            }
            times.append(elapsed)
        }
        let p50 = Self.percentile(times, 0.5)
        let p99 = Self.percentile(times, 0.99)
        print("crash detection by every member, N=100, 20 seeds: p50 \(Self.seconds(p50)), p99 \(Self.seconds(p99))")
        #expect(p99 <= .seconds(5))
    }

    @Test func crashIsDetectedByEveryMemberAt1000Nodes() {
        var times: [Duration] = []
        for seed in UInt64(1)...3 {
            let (elapsed, cluster) = Self.detectionTime(count: 1000, seed: seed)
            guard let elapsed else {
                Issue.record("\(cluster.report("crash not detected by everyone within 60 s"))")
                return
            }
            times.append(elapsed)
        }
        let p99 = Self.percentile(times, 0.99)
        print("crash detection by every member, N=1000, 3 seeds: max \(Self.seconds(p99))")
        #expect(p99 <= .seconds(8))
    }
}
