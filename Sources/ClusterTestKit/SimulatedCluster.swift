import Membership

/// A deterministic simulation of N membership state machines: a virtual clock, a message queue with
/// seeded per-link loss and delay, one-way and two-way partitions, crashes, restarts and process
/// pauses. The same seed replays the same history exactly; `report()` prints the seed and the recent
/// event log for a failing test.
public final class SimulatedCluster {
    public struct Options: Sendable {
        public var configuration: MembershipConfiguration = .lan
        /// Virtual time between two ticks of every node.
        public var step: Duration = .milliseconds(20)
        public var minimumDelay: Duration = .milliseconds(1)
        public var maximumDelay: Duration = .milliseconds(5)
        /// Probability that any message is lost.
        public var loss: Double = 0
        /// Events kept for `report()`.
        public var eventLogLimit = 400

        public init() {}
    }

    public struct Event: CustomStringConvertible, Sendable {
        public var time: Instant
        public var text: String
        public var description: String { "\(self.time) \(self.text)" }
    }

    /// A member status change seen by one node.
    public struct StatusChange: Sendable {
        public var time: Instant
        public var observer: NodeID
        public var subject: NodeID
        public var status: MemberStatus
        public var incarnation: Incarnation
    }

    struct Link: Hashable {
        var from: NodeID
        var to: NodeID
    }

    struct Node {
        var machine: MembershipStateMachine?
        var paused = false
        var held: [MembershipEnvelope] = []
        var address: String
        var lives = 0
    }

    struct Pending: Comparable {
        var deliverAt: Instant
        var order: UInt64
        var from: NodeID
        var to: String
        var envelope: MembershipEnvelope

        static func < (lhs: Pending, rhs: Pending) -> Bool {
            (lhs.deliverAt, lhs.order) < (rhs.deliverAt, rhs.order)
        }

        static func == (lhs: Pending, rhs: Pending) -> Bool { lhs.order == rhs.order }
    }

    public let seed: UInt64
    public var options: Options
    public private(set) var now: Instant = .zero
    public private(set) var ids: [NodeID] = []
    private var nodes: [NodeID: Node] = [:]
    private var addressBook: [String: NodeID] = [:]
    private var random: SplitMix64
    private var queue = Heap<Pending>()
    private var order: UInt64 = 0
    private var blocked: Set<Link> = []
    private var linkLoss: [Link: Double] = [:]
    private var eventLog: [Event] = []
    public private(set) var messagesSent = 0
    public private(set) var messagesDropped = 0
    public private(set) var conflicts: [(Instant, NodeID, MemberState)] = []
    /// Called for every status change any node reports (tests record what they need).
    public var onStatusChange: ((StatusChange) -> Void)?
    /// Called for every message a node sends (benchmarks measure sizes with it).
    public var onSend: ((MembershipEnvelope) -> Void)?

    /// Creates `count` nodes (`node-0000` …), each joining through `node-0000`'s address, none started.
    public init(count: Int, seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        self.random = SplitMix64(seed: seed)
        for index in 0..<count {
            let id = NodeID("node-\(String(repeating: "0", count: max(0, 4 - String(index).count)))\(index)")
            let address = "10.\(index / 65536).\((index / 256) % 256).\(index % 256):7946"
            self.ids.append(id)
            self.nodes[id] = Node(address: address)
            self.addressBook[address] = id
        }
    }

    public func address(of id: NodeID) -> String { self.nodes[id]!.address }

    // MARK: node lifecycle

    /// Starts (or restarts) `id`: a new process, with a new instance token and a higher incarnation.
    public func start(_ id: NodeID, seeds: [String]? = nil) {
        var node = self.nodes[id]!
        node.lives += 1
        node.paused = false
        node.held = []
        let metadata = MemberMetadata(
            id: id,
            gossipAddress: node.address,
            peerAddress: node.address,
            dataAddress: node.address,
            instance: self.random.next()
        )
        // A restarted process starts above its previous life (the shell uses wall-clock milliseconds).
        let incarnation = Incarnation(UInt64(self.now.sinceOrigin.components.seconds) * 1000 + UInt64(node.lives))
        node.machine = MembershipStateMachine(
            metadata: metadata,
            incarnation: incarnation,
            seeds: seeds ?? [self.nodes[self.ids[0]]!.address],
            configuration: self.options.configuration,
            randomSeed: self.random.next(),
            now: self.now
        )
        self.nodes[id] = node
        self.log(node.lives == 1 ? "start \(id)" : "restart \(id)")
    }

    public func startAll() {
        for id in self.ids { self.start(id) }
    }

    /// Every node starts already knowing every other (a converged cluster), for large-N tests.
    public func startConverged() {
        for id in self.ids { self.start(id, seeds: []) }
        let states = self.ids.compactMap { self.nodes[$0]!.machine?.me }
        for id in self.ids {
            let sender = states[0].id == id ? states[1] : states[0]
            let envelope = MembershipEnvelope(sender: sender, message: .syncDelta(states: states), updates: [])
            _ = self.nodes[id]!.machine!.receive(envelope, now: self.now)
            _ = self.nodes[id]!.machine!.receive(
                MembershipEnvelope(
                    sender: sender,
                    message: .syncResponse(states: states, digest: states.map(\.digest)),
                    updates: []
                ),
                now: self.now
            )
            // The initial announcements are already known everywhere: do not spread them again.
            self.nodes[id]!.machine!.forgetPendingUpdates()
        }
    }

    public func crash(_ id: NodeID) {
        self.nodes[id]!.machine = nil
        self.nodes[id]!.held = []
        self.log("crash \(id)")
    }

    public func pause(_ id: NodeID) {
        self.nodes[id]!.paused = true
        self.log("pause \(id)")
    }

    /// Resumes a paused node: it receives what arrived meanwhile, then ticks late.
    public func resume(_ id: NodeID) {
        self.nodes[id]!.paused = false
        self.log("resume \(id)")
        let held = self.nodes[id]!.held
        self.nodes[id]!.held = []
        for envelope in held { self.deliverNow(envelope, to: id) }
    }

    /// Changes a node's metadata (announced with a new incarnation).
    public func updateMetadata(_ id: NodeID, _ change: (inout MemberMetadata) -> Void) {
        guard let actions = self.nodes[id]!.machine?.updateMetadata(change, now: self.now) else { return }
        self.log("metadata change \(id)")
        self.perform(actions, from: id)
    }

    /// Starts a second live process that claims `id`, at another address (a misconfiguration the
    /// members must detect and report).
    public func startImpostor(of id: NodeID, at address: String) {
        let impostor = NodeID(id.rawValue + "~impostor")
        var node = Node(address: address)
        node.lives = 1
        let metadata = MemberMetadata(id: id, gossipAddress: address, instance: self.random.next())
        node.machine = MembershipStateMachine(
            metadata: metadata,
            incarnation: Incarnation(UInt64(self.now.sinceOrigin.components.seconds) * 1000 + 500),
            seeds: [self.nodes[self.ids[0]]!.address],
            configuration: self.options.configuration,
            randomSeed: self.random.next(),
            now: self.now
        )
        self.nodes[impostor] = node
        self.addressBook[address] = impostor
        self.ids.append(impostor)
        self.log("impostor of \(id) at \(address)")
    }

    /// `observer` declares the dead member `id` gone for good. Returns false when it refused (not dead).
    @discardableResult
    public func forget(_ id: NodeID, by observer: NodeID) -> Bool {
        guard let actions = self.nodes[observer]!.machine?.forget(id, now: self.now) else { return false }
        self.log("\(observer) forgets \(id)")
        self.perform(actions, from: observer)
        return true
    }

    public func leave(_ id: NodeID) {
        guard let actions = self.nodes[id]!.machine?.leave(now: self.now) else { return }
        self.log("leave \(id)")
        self.perform(actions, from: id)
    }

    // MARK: network faults

    /// Cuts traffic between the groups (both ways unless `oneWay`: then only `a` → `b`).
    public func partition(_ a: [NodeID], _ b: [NodeID], oneWay: Bool = false) {
        for x in a {
            for y in b {
                self.blocked.insert(Link(from: x, to: y))
                if !oneWay { self.blocked.insert(Link(from: y, to: x)) }
            }
        }
        self.log("partition \(a.count) | \(b.count)\(oneWay ? " (one way)" : "")")
    }

    public func heal() {
        self.blocked.removeAll()
        self.log("heal")
    }

    public func setLoss(_ probability: Double, from: NodeID, to: NodeID) {
        self.linkLoss[Link(from: from, to: to)] = probability
    }

    // MARK: running

    public func run(for duration: Duration) {
        let end = self.now + duration
        while self.now < end { self.step() }
    }

    /// Runs until `condition` holds (checked every `every` steps) or `timeout`; returns the elapsed time,
    /// or nil on timeout.
    @discardableResult
    public func run(until condition: (SimulatedCluster) -> Bool, timeout: Duration, every: Int = 5) -> Duration? {
        let start = self.now
        var steps = 0
        while self.now - start < timeout {
            self.step()
            steps += 1
            if steps % every == 0 && condition(self) { return self.now - start }
        }
        return condition(self) ? self.now - start : nil
    }

    /// Advances the clock by one step: delivers due messages, then ticks every running node in id order.
    public func step() {
        self.now = self.now + self.options.step
        while let next = self.queue.min, next.deliverAt <= self.now {
            let pending = self.queue.popMin()!
            self.deliver(pending)
        }
        for id in self.ids {
            guard let node = self.nodes[id], !node.paused, node.machine != nil else { continue }
            let actions = self.nodes[id]!.machine!.tick(now: self.now)
            if !actions.isEmpty { self.perform(actions, from: id) }
        }
    }

    private func deliver(_ pending: Pending) {
        guard let id = self.addressBook[pending.to], let node = self.nodes[id], node.machine != nil else {
            self.messagesDropped += 1
            return
        }
        if node.paused {
            self.nodes[id]!.held.append(pending.envelope)
            return
        }
        self.deliverNow(pending.envelope, to: id, at: pending.deliverAt)
    }

    private func deliverNow(_ envelope: MembershipEnvelope, to id: NodeID, at time: Instant? = nil) {
        guard self.nodes[id]?.machine != nil else { return }
        let actions = self.nodes[id]!.machine!.receive(envelope, now: time ?? self.now)
        if !actions.isEmpty { self.perform(actions, from: id) }
    }

    private func perform(_ actions: [MembershipStateMachine.Action], from id: NodeID) {
        for action in actions {
            switch action {
            case .send(let envelope, let destination):
                self.messagesSent += 1
                self.onSend?(envelope)
                guard let target = self.addressBook[destination.address] else {
                    self.messagesDropped += 1
                    continue
                }
                let link = Link(from: id, to: target)
                let loss = self.linkLoss[link] ?? self.options.loss
                if self.blocked.contains(link) || (loss > 0 && self.uniform() < loss) {
                    self.messagesDropped += 1
                    continue
                }
                let span = self.options.maximumDelay - self.options.minimumDelay
                let delay = self.options.minimumDelay + span * self.uniform()
                self.order += 1
                self.queue.insert(
                    Pending(
                        deliverAt: self.now + delay,
                        order: self.order,
                        from: id,
                        to: destination.address,
                        envelope: envelope
                    )
                )
            case .memberChanged(let state, let previous):
                if previous != state.status {
                    self.log("\(id) sees \(state.id) \(state.status) (inc \(state.incarnation))")
                }
                self.onStatusChange?(
                    StatusChange(
                        time: self.now,
                        observer: id,
                        subject: state.id,
                        status: state.status,
                        incarnation: state.incarnation
                    )
                )
            case .conflictingIdentity(let state):
                self.conflicts.append((self.now, id, state))
                self.log("\(id) reports another process claiming its id (instance \(state.metadata.instance))")
            }
        }
    }

    private func uniform() -> Double { Double(self.random.next() >> 11) * 0x1.0p-53 }

    private func log(_ text: String) {
        self.eventLog.append(Event(time: self.now, text: text))
        if self.eventLog.count > self.options.eventLogLimit * 2 {
            self.eventLog.removeFirst(self.eventLog.count - self.options.eventLogLimit)
        }
    }

    // MARK: observation

    public func isRunning(_ id: NodeID) -> Bool { self.nodes[id]?.machine != nil }

    public func machine(_ id: NodeID) -> MembershipStateMachine? { self.nodes[id]?.machine }

    /// What `observer` believes about `subject`.
    public func status(of subject: NodeID, seenBy observer: NodeID) -> MemberStatus? {
        self.nodes[observer]?.machine?.state(of: subject)?.status
    }

    /// Running, unpaused nodes.
    public var runningIDs: [NodeID] {
        self.ids.filter { self.nodes[$0]!.machine != nil && !self.nodes[$0]!.paused }
    }

    /// True when every node in `ids` has the same view of every member in `ids`.
    public func viewsAgree(among ids: [NodeID]) -> Bool {
        guard let first = ids.first, let reference = self.nodes[first]?.machine else { return false }
        let expected = ids.map { reference.state(of: $0)?.digest }
        for id in ids.dropFirst() {
            guard let machine = self.nodes[id]?.machine else { return false }
            for (index, subject) in ids.enumerated() where machine.state(of: subject)?.digest != expected[index] {
                return false
            }
        }
        return true
    }

    /// The seed and the recent event log, for a failing test.
    public func report(_ headline: String) -> String {
        let recent = self.eventLog.suffix(self.options.eventLogLimit).map { "  \($0)" }.joined(separator: "\n")
        return "\(headline)\nreplay with seed \(self.seed) (now \(self.now))\nrecent events:\n\(recent)"
    }
}
