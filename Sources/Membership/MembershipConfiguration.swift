#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Timing and fan-out of the failure detector. Timeouts that depend on the cluster size scale with
/// log10(N) (suspicion) and log2(N) (retransmissions), as in SWIM and memberlist.
public struct MembershipConfiguration: Sendable {
    /// Interval between probes of the next member. Scaled by the local health multiplier.
    public var probeInterval: Duration
    /// Time to wait for a direct ack before asking others. Scaled by the local health multiplier.
    public var probeTimeout: Duration
    /// Members asked to probe indirectly (k).
    public var indirectProbes: Int
    /// Interval of the dissemination fan-out (only when there is something to spread).
    public var gossipInterval: Duration
    /// Members each fan-out round sends to.
    public var gossipFanout: Int
    /// Updates piggybacked on one message at most.
    public var maxPiggyback: Int
    /// λ: each update is sent about λ·⌈log2(N+1)⌉ times.
    public var retransmitMultiplier: Int
    /// Suspicion timeout floor = this × max(1, log10 N) × probeInterval (reached with enough confirmations).
    public var suspicionMultiplier: Double
    /// Suspicion timeout ceiling = this × floor (a lone accuser's suspicion).
    public var suspicionMaxMultiplier: Double
    /// Independent confirmations that bring the suspicion timeout down to its floor (Lifeguard K).
    public var suspicionConfirmations: Int
    /// Highest local health multiplier (probe interval and timeout grow up to (1 + this)×).
    public var maxLocalHealth: Int
    /// Push-pull full synchronisation with a random live member.
    public var syncInterval: Duration
    /// How often each member contacts a random dead member, so partitions heal by themselves.
    public var deadRetryInterval: Duration
    /// How long dead and left members are remembered (and retried).
    public var deadRetention: Duration
    /// Interval between join attempts to the seeds while no other member is known.
    public var joinRetryInterval: Duration
    /// A tick later than this after the previous one means this node itself stalled: it convicts nobody
    /// until it has probed again.
    public var lateTickThreshold: Duration

    public init(
        probeInterval: Duration,
        probeTimeout: Duration,
        indirectProbes: Int = 3,
        gossipInterval: Duration,
        gossipFanout: Int = 3,
        maxPiggyback: Int = 12,
        retransmitMultiplier: Int = 4,
        suspicionMultiplier: Double,
        suspicionMaxMultiplier: Double = 4,
        suspicionConfirmations: Int = 3,
        maxLocalHealth: Int = 8,
        syncInterval: Duration,
        deadRetryInterval: Duration,
        deadRetention: Duration = .seconds(7 * 24 * 3600),
        joinRetryInterval: Duration = .seconds(1),
        lateTickThreshold: Duration
    ) {
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.indirectProbes = indirectProbes
        self.gossipInterval = gossipInterval
        self.gossipFanout = gossipFanout
        self.maxPiggyback = maxPiggyback
        self.retransmitMultiplier = retransmitMultiplier
        self.suspicionMultiplier = suspicionMultiplier
        self.suspicionMaxMultiplier = suspicionMaxMultiplier
        self.suspicionConfirmations = suspicionConfirmations
        self.maxLocalHealth = maxLocalHealth
        self.syncInterval = syncInterval
        self.deadRetryInterval = deadRetryInterval
        self.deadRetention = deadRetention
        self.joinRetryInterval = joinRetryInterval
        self.lateTickThreshold = lateTickThreshold
    }

    /// A data-centre network: round trips well under 10 ms.
    /// Long enough for a live process with this node's id to hear of a new one and answer (a few
    /// gossip rounds and probes): a joining node waits this long before it serves.
    public var identitySettleTime: Duration { self.probeInterval * 2 + self.gossipInterval * 10 }

    public static var lan: MembershipConfiguration {
        MembershipConfiguration(
            probeInterval: .milliseconds(500),
            probeTimeout: .milliseconds(200),
            gossipInterval: .milliseconds(100),
            suspicionMultiplier: 1,
            syncInterval: .seconds(20),
            deadRetryInterval: .seconds(5),
            lateTickThreshold: .milliseconds(400)
        )
    }

    /// Links across regions: round trips up to a few hundred ms.
    public static var wan: MembershipConfiguration {
        MembershipConfiguration(
            probeInterval: .seconds(2),
            probeTimeout: .milliseconds(1500),
            gossipInterval: .milliseconds(400),
            gossipFanout: 4,
            suspicionMultiplier: 3,
            suspicionMaxMultiplier: 5,
            syncInterval: .seconds(60),
            deadRetryInterval: .seconds(15),
            lateTickThreshold: .seconds(2)
        )
    }

    /// Loopback tests: short timeouts, fast convergence.
    public static var localTesting: MembershipConfiguration {
        MembershipConfiguration(
            probeInterval: .milliseconds(200),
            probeTimeout: .milliseconds(80),
            gossipInterval: .milliseconds(50),
            suspicionMultiplier: 1,
            syncInterval: .seconds(5),
            deadRetryInterval: .seconds(1),
            joinRetryInterval: .milliseconds(300),
            lateTickThreshold: .milliseconds(250)
        )
    }

    /// Sends per update for a cluster of `members`.
    public func retransmitLimit(members: Int) -> Int {
        var log2 = 0
        while (1 << log2) < members + 1 { log2 += 1 }
        return self.retransmitMultiplier * max(1, log2)
    }

    /// The Lifeguard suspicion timeout for a cluster of `members` with `confirmations` independent
    /// accusers beyond the first: from the ceiling down to the floor as confirmations arrive.
    public func suspicionTimeout(members: Int, confirmations: Int) -> Duration {
        let scale = max(1, log10(Double(max(members, 1))))
        let floor = self.probeInterval * (self.suspicionMultiplier * scale)
        let ceiling = floor * self.suspicionMaxMultiplier
        let k = Double(max(1, self.suspicionConfirmations))
        let fraction = min(1, log(Double(confirmations) + 1) / log(k + 1))
        let timeout = ceiling - (ceiling - floor) * fraction
        return max(floor, timeout)
    }
}
