import Membership
import Testing

/// Unit tests: one input at a time, asserting the exact actions.
@Suite("Membership state machine")
struct MembershipStateMachineTests {
    static func metadata(_ id: String, instance: UInt64 = 1) -> MemberMetadata {
        MemberMetadata(id: NodeID(id), gossipAddress: "\(id):7946", instance: instance)
    }

    static func state(
        _ id: String,
        _ status: MemberStatus = .alive,
        incarnation: UInt64 = 1,
        accuser: String? = nil
    )
        -> MemberState
    {
        MemberState(
            metadata: metadata(id),
            status: status,
            incarnation: Incarnation(incarnation),
            accuser: accuser.map { NodeID($0) }
        )
    }

    /// A node `a` that knows `others` (all alive), with nothing pending to gossip.
    static func machine(
        knowing others: [String] = ["b", "c", "d", "e"],
        configuration: MembershipConfiguration = .lan
    )
        -> MembershipStateMachine
    {
        var m = MembershipStateMachine(
            metadata: metadata("a"),
            incarnation: Incarnation(1),
            seeds: [],
            configuration: configuration,
            randomSeed: 7,
            now: .zero
        )
        let states = others.map { state($0) }
        _ = m.receive(
            MembershipEnvelope(sender: states[0], message: .syncDelta(states: states), updates: []),
            now: .zero
        )
        m.forgetPendingUpdates()
        return m
    }

    static func sends(_ actions: [MembershipStateMachine.Action]) -> [(MembershipMessage, String)] {
        actions.compactMap {
            if case .send(let envelope, let destination) = $0 { return (envelope.message, destination.address) }
            return nil
        }
    }

    /// A gossip message from member `b` carrying `updates`.
    static func gossip(_ updates: [MemberState]) -> MembershipEnvelope {
        MembershipEnvelope(sender: state("b"), message: .gossip, updates: updates)
    }

    /// Ticks every 10 ms until the machine sends its first ping; returns its sequence and target.
    static func firstPing(_ m: inout MembershipStateMachine, now: inout Instant) -> (sequence: UInt64, target: String) {
        while true {
            now = now + .milliseconds(10)
            for (message, address) in Self.sends(m.tick(now: now)) {
                if case .ping(let sequence) = message { return (sequence, String(address.dropLast(5))) }
            }
        }
    }

    @Test func pingIsAnsweredWithAnAck() {
        var m = Self.machine()
        let actions = m.receive(
            MembershipEnvelope(sender: Self.state("b"), message: .ping(sequence: 42), updates: []),
            now: .zero
        )
        let sent = Self.sends(actions)
        #expect(sent.count == 1)
        #expect(sent[0].0 == .ack(sequence: 42))
        #expect(sent[0].1 == "b:7946")
    }

    @Test func unansweredProbeGoesIndirectThenSuspects() {
        var m = Self.machine()
        var now = Instant.zero
        let ping = Self.firstPing(&m, now: &now)
        let target = NodeID(ping.target)
        // No ack: after the probe timeout, k = 3 others are asked to probe the target.
        var requests: [String] = []
        for _ in 0..<25 {
            now = now + .milliseconds(10)
            for (message, address) in Self.sends(m.tick(now: now)) {
                if case .pingRequest(let sequence, let requested) = message {
                    #expect(sequence == ping.sequence)
                    #expect(requested == target)
                    requests.append(address)
                }
            }
        }
        #expect(requests.count == 3)
        #expect(!requests.contains("\(ping.target):7946"))
        // Still nothing by the end of the interval: the target becomes suspect, accused by us.
        var changed: [MemberState] = []
        for _ in 0..<40 {
            now = now + .milliseconds(10)
            for action in m.tick(now: now) {
                if case .memberChanged(let state, let previous) = action, previous == .alive { changed.append(state) }
            }
        }
        #expect(changed.map(\.id) == [target])
        #expect(changed.first?.status == .suspect)
        #expect(changed.first?.accuser == "a")
        // No nacks came back from the three helpers: the local health multiplier went up.
        #expect(m.localHealth == 3)
    }

    @Test func ackEndsTheProbeAndLowersLocalHealth() {
        var m = Self.machine()
        var now = Instant.zero
        let (sequence, target) = Self.firstPing(&m, now: &now)
        _ = m.receive(
            MembershipEnvelope(sender: Self.state(target), message: .ack(sequence: sequence), updates: []),
            now: now
        )
        for _ in 0..<60 {
            now = now + .milliseconds(10)
            for action in m.tick(now: now) {
                if case .memberChanged = action { Issue.record("no member should change: \(action)") }
                if case .send(let envelope, _) = action, case .pingRequest = envelope.message {
                    Issue.record("an acked probe must not go indirect")
                }
            }
        }
    }

    @Test func suspectBecomesDeadAfterTheTimeoutUnlessRefuted() {
        var m = Self.machine()
        _ = m.receive(
            Self.gossip([Self.state("c", .suspect, accuser: "b")]),
            now: .zero
        )
        #expect(m.state(of: "c")?.status == .suspect)
        // A refutation (higher incarnation) clears it.
        _ = m.receive(
            MembershipEnvelope(sender: Self.state("c", incarnation: 2), message: .gossip, updates: []),
            now: .seconds(1)
        )
        #expect(m.state(of: "c")?.status == .alive)
        // An unrefuted suspicion of d becomes dead; a lone accuser means the longest timeout.
        _ = m.receive(
            Self.gossip([Self.state("d", .suspect, accuser: "b")]),
            now: .seconds(1)
        )
        let timeout = MembershipConfiguration.lan.suspicionTimeout(members: 5, confirmations: 0)
        var now = Instant.seconds(1)
        var deadAt: Instant?
        while deadAt == nil && now < .seconds(30) {
            now = now + .milliseconds(20)
            for action in m.tick(now: now) {
                if case .memberChanged(let state, _) = action, state.id == "d", state.status == .dead { deadAt = now }
            }
        }
        let elapsed = deadAt.map { $0 - .seconds(1) }
        #expect(elapsed != nil && elapsed! >= timeout && elapsed! < timeout + .milliseconds(100))
    }

    @Test func confirmationsShortenTheSuspicionTimeout() {
        let lan = MembershipConfiguration.lan
        let lone = lan.suspicionTimeout(members: 100, confirmations: 0)
        let one = lan.suspicionTimeout(members: 100, confirmations: 1)
        let many = lan.suspicionTimeout(members: 100, confirmations: 3)
        #expect(lone > one)
        #expect(one > many)
        #expect(many == lan.suspicionTimeout(members: 100, confirmations: 10))
        // Larger clusters wait longer (log10 N).
        #expect(lan.suspicionTimeout(members: 1000, confirmations: 0) > lone)
    }

    @Test func suspicionOfSelfIsRefutedWithAHigherIncarnation() {
        var m = Self.machine()
        let before = m.me.incarnation
        _ = m.receive(
            Self.gossip([
                MemberState(metadata: m.me.metadata, status: .suspect, incarnation: before, accuser: "b")
            ]),
            now: .zero
        )
        #expect(m.me.incarnation > before)
        #expect(m.me.status == .alive)
        #expect(m.localHealth == 1)
        // The refutation is the first thing gossiped.
        var now = Instant.zero
        var refuted = false
        for _ in 0..<20 {
            now = now + .milliseconds(50)
            for action in m.tick(now: now) {
                if case .send(let envelope, _) = action,
                    envelope.updates.contains(where: { $0.id == "a" && $0.incarnation > before })
                {
                    refuted = true
                }
            }
        }
        #expect(refuted)
    }

    @Test func precedenceFollowsIncarnationThenStatus() {
        let alive1 = Self.state("x", .alive, incarnation: 1)
        let suspect1 = Self.state("x", .suspect, incarnation: 1)
        let dead1 = Self.state("x", .dead, incarnation: 1)
        let alive2 = Self.state("x", .alive, incarnation: 2)
        #expect(suspect1.supersedes(alive1))
        #expect(dead1.supersedes(suspect1))
        #expect(!alive1.supersedes(suspect1))
        #expect(alive2.supersedes(dead1))
        #expect(!dead1.supersedes(alive2))
        #expect(Self.state("x", .left, incarnation: 2).supersedes(alive2))
    }

    @Test func restartWithTheSameIdIsAcceptedAtOnce() {
        var m = Self.machine()
        _ = m.receive(
            Self.gossip([Self.state("c", .dead)]),
            now: .zero
        )
        #expect(m.state(of: "c")?.status == .dead)
        var restarted = Self.state("c", incarnation: 5000)
        restarted.metadata.gossipAddress = "c-new:7946"
        restarted.metadata.instance = 99
        let actions = m.receive(
            MembershipEnvelope(sender: restarted, message: .ping(sequence: 1), updates: []),
            now: .seconds(1)
        )
        #expect(m.state(of: "c")?.status == .alive)
        #expect(m.state(of: "c")?.metadata.gossipAddress == "c-new:7946")
        #expect(actions.contains(.memberChanged(restarted, previous: .dead)))
    }

    @Test func anotherProcessClaimingOurIdIsReported() {
        var m = Self.machine()
        var impostor = MemberState(
            metadata: m.me.metadata,
            status: .alive,
            incarnation: Incarnation(m.me.incarnation.value + 3)
        )
        impostor.metadata.instance = 12345
        let actions = m.receive(
            Self.gossip([impostor]),
            now: .zero
        )
        #expect(actions.contains(.conflictingIdentity(impostor)))
        #expect(m.me.incarnation > impostor.incarnation)
        // Reported once per process.
        let again = m.receive(
            Self.gossip([impostor]),
            now: .seconds(1)
        )
        #expect(!again.contains(.conflictingIdentity(impostor)))
    }

    @Test func lateTicksConvictNobody() {
        var m = Self.machine()
        _ = m.receive(
            Self.gossip([Self.state("c", .suspect, accuser: "b")]),
            now: .zero
        )
        _ = m.tick(now: .milliseconds(10))
        // The node stalls for 30 s: every suspicion would have expired, but it convicts nobody.
        let actions = m.tick(now: .seconds(30))
        #expect(!actions.contains { if case .memberChanged(let s, _) = $0 { s.status == .dead } else { false } })
        #expect(m.state(of: "c")?.status == .suspect)
    }

    @Test func gracefulLeaveIsAnnounced() {
        var m = Self.machine()
        let actions = m.leave(now: .zero)
        #expect(m.me.status == .left)
        let sent = Self.sends(actions)
        #expect(sent.count == 4)
        #expect(
            actions.allSatisfy {
                if case .send(let envelope, _) = $0 { envelope.sender.status == .left } else { true }
            }
        )
    }

    @Test func joinGoesThroughTheSeeds() {
        var m = MembershipStateMachine(
            metadata: Self.metadata("a"),
            incarnation: Incarnation(1),
            seeds: ["a:7946", "seed:7946"],
            configuration: .lan,
            randomSeed: 1,
            now: .zero
        )
        let sent = Self.sends(m.tick(now: .zero))
        #expect(sent.count == 1)
        #expect(sent[0].1 == "seed:7946")
        if case .syncRequest = sent[0].0 {} else { Issue.record("expected a sync request, got \(sent[0].0)") }
        #expect(!m.hasJoined)
    }

    @Test func retransmissionsAreBounded() {
        let lan = MembershipConfiguration.lan
        var m = Self.machine()
        let update = Self.state("c", incarnation: 9)
        _ = m.receive(Self.gossip([update]), now: .zero)
        var carried = 0
        var now = Instant.zero
        for _ in 0..<400 {
            now = now + .milliseconds(25)
            for action in m.tick(now: now) {
                if case .send(let envelope, _) = action, envelope.updates.contains(update) { carried += 1 }
            }
        }
        #expect(carried == 4 * 3)  // λ = 4 × ⌈log2(5 + 1)⌉ = 3
        #expect(lan.retransmitMultiplier == 4)
    }
}
