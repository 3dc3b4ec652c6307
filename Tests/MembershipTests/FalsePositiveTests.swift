import ClusterTestKit
import Membership
import Testing

/// No false positives under message loss: 10^6 simulated node-seconds at 10 % loss, as four
/// independent 100-node runs of 2,500 s (parallel on the test runner's cores).
@Suite("Membership under loss")
struct FalsePositiveTests {
    @Test(arguments: [UInt64(4242), 4243, 4244, 4245])
    func noHealthyMemberIsDeclaredDeadAtTenPercentLoss(seed: UInt64) {
        var options = SimulatedCluster.Options()
        options.loss = 0.10
        options.step = .milliseconds(50)
        let cluster = SimulatedCluster(count: 100, seed: seed, options: options)
        var falseDeaths: [SimulatedCluster.StatusChange] = []
        var suspicions = 0
        cluster.onStatusChange = { change in
            if change.status == .dead { falseDeaths.append(change) }
            if change.status == .suspect { suspicions += 1 }
        }
        cluster.startConverged()
        cluster.run(for: .seconds(2500))
        print(
            "seed \(seed): 10% loss, 100 nodes x 2,500 s = 2.5 x 10^5 node-seconds: \(suspicions) suspicion reports "
                + "(all refuted), \(falseDeaths.count) healthy members declared dead, \(cluster.messagesSent) messages"
        )
        #expect(
            falseDeaths.isEmpty,
            "\(cluster.report("a healthy member was declared dead: \(falseDeaths.prefix(3))"))"
        )
    }
}
