@testable import Consensus

/// A deterministic multi-replica simulation on a virtual clock (milliseconds), everything drawn from
/// one seed: per-link loss, delay (hence reordering) and duplication; one-way, split and bridge
/// partitions; crashes that lose the write in progress; restarts; pauses longer than the election
/// timeout; disk stalls; membership changes; and clients running create/move/get on a tiny directory.
///
/// The shell is modeled as etcd's: a `Ready` is written with one synced write that takes 1–8 virtual
/// ms (the replica keeps stepping meanwhile); its messages are sent, its entries applied and
/// `advance` called only once the write is durable. A crash (often timed during a write) drops the
/// write in flight and all volatile state: a replica restarts from what it had persisted, and the
/// application rebuilds from the snapshot and re-applies the log. Each replica compacts its log
/// (a snapshot of the directory) every 10 applied entries.
///
/// Time: ticks every 10 ms per replica (own phase), election timeout 10 ticks, heartbeat 2; a run
/// lasts 3 virtual seconds. Five replicas, one to five of them voters at the start, the others
/// spare (joining with an empty log); the administrator adds learners and voters, promotes
/// learners, removes members (the leader itself included, down to one voter) and transfers
/// leadership.
///
/// Each seed also draws a profile, so that the same checks run over every setting a deployment
/// may choose: pre-vote and check-quorum each on or off, the number of initial voters, the
/// batching and window sizes, and a network latency class (from a LAN to links slower than the
/// election timeout).
///
/// Invariants are checked after every event (see `RaftSimulation+Checks.swift`); the client
/// history is checked for linearizability at the end.
final class RaftSimulation {
    struct Options {
        var seed: UInt64
        var duration: Int64 = 3_000
        var mutations: RaftConfiguration.Mutations = []
        /// A broken shell: sends a `Ready`'s messages before its write is durable (proves that the
        /// crash model matters).
        var sendBeforePersist = false
        /// The simulation before per-seed profiles: three or five voters, pre-vote and check-quorum
        /// on, a LAN, voters only via learners and never fewer than three, no short pauses, disk
        /// stalls or strikes after a change. Figure 8 needs a fast majority that commits while a
        /// stale leader's entry lingers; the drawn profiles make it about 20 times rarer (see
        /// `eachMutationIsCaught`).
        var classicProfile = false
        var trace = false
    }

    enum Event {
        case tick(node: Int, incarnation: Int)
        indirect case deliver(RaftMessage)
        case persisted(node: Int, incarnation: Int)
        case restart(node: Int)
        case invoke(client: Int)
        case arrive(node: Int, operation: Int)
        case timeout(client: Int, operation: Int)
        /// `recurring` faults schedule the next one; a one-off strikes right after a risky change.
        case fault(recurring: Bool)
        case heal(generation: Int)
        case admin
    }

    /// A class so that reaching a replica through `nodes[i]` never copies its state machine.
    final class Node {
        var raft: RaftNode?
        var incarnation = 0
        var durable: PersistentState
        var writing: Ready?
        var directory = Directory()
        var pausedUntil: Int64 = 0
        var proposals: [(position: LogPosition, operation: Int)] = []
        var reads: [(operation: Int, index: UInt64?)] = []

        init(durable: PersistentState) {
            self.durable = durable
        }

        /// Reads the running replica in place (a plain read of `raft` would copy the whole struct).
        func inspect<R>(_ body: (inout RaftNode) -> R) -> R? {
            guard self.raft != nil else { return nil }
            return body(&self.raft!)
        }
    }

    /// What the checks last saw of a replica (kept apart from `nodes`, which they borrow).
    struct Marks {
        var version: UInt64 = .max
        var commit: UInt64 = 0
        var term: UInt64 = .max
        var role: RaftRole = .follower
    }

    struct Client {
        var waitingFor: Int?
        var leaderGuess = 0
        var lastEpoch: [UInt32] = Array(repeating: 1, count: Directory.keys)
    }

    let options: Options
    var random: SplitMix64
    var queue = EventQueue()
    var now: Int64 = 0
    /// A strictly increasing timestamp for the history (virtual time alone has ties).
    var clock: UInt64 = 0
    var nodes: [Node] = []
    var marks: [Marks] = Array(repeating: Marks(), count: RaftSimulation.nodeCount)
    var clients: [Client] = []
    var history: [LinearizabilityChecker.Entry] = []
    /// `history` position of each operation id, or nil once dropped (definitely had no effect).
    var historyIndex: [Int?] = []
    var operationKinds: [(key: Int, operation: Directory.Operation)] = []

    // Network
    var loss: [[Double]] = []
    var blocked: [[Bool]] = []
    var duplication = 0.0
    var partitionGeneration = 0
    var maxBytesPerMessage = 64
    var maxInflight = 4
    /// Per-seed protocol switches: both are optional in etcd, and each removes a guard the other
    /// paths might silently rely on (e.g. without check-quorum a deposed leader lingers).
    var preVote = true
    var checkQuorum = true
    var initialVoters = 3
    /// Per-seed latency class: a one-way delay is `1...baseDelay` ms, and with probability
    /// `slowChance` a further `0..<slowExtra` ms. Class 0 is a LAN; the others reach or exceed the
    /// election timeout (100–200 ms), so votes and appends of old terms arrive after new elections.
    var baseDelay: Int64 = 6
    var slowChance = 0.05
    var slowExtra: Int64 = 40
    /// Faults come every 60–240 ms: more often, the cluster makes too little progress for the
    /// interesting interleavings (the mutation runs find fewer bugs).
    let faultInterval: Int64 = 60

    // Invariant bookkeeping
    var leaderOfTerm: [UInt64: ReplicaID] = [:]
    var entryAt: [PositionKey: (entry: LogEntry, previousTerm: UInt64)] = [:]
    var committedTerm: [UInt64] = [0]
    var commitTermOf: [UInt64] = [0]
    /// For each term t, the highest index first declared committed by a replica in term t.
    var committedInTerm: [(term: UInt64, index: Int)] = []
    var appliedEntries: [LogEntry?] = [nil]
    var stateAfter: [Directory?] = [Directory()]
    var violation: String?

    // Trace and figures
    var events: [String] = []
    var eventCount = 0
    var stats = Stats()

    struct PositionKey: Hashable {
        var index: UInt64
        var term: UInt64
    }

    struct Stats {
        var completed = 0
        var maybe = 0
        var elections = 0
        var snapshotsSent = 0
        var configurationChanges = 0
        var crashes = 0
        var inconclusive = 0
        /// Coverage of the profiles' paths (checked by `manySeedsKeepEveryInvariant`).
        var votersAdded = 0
        var leaderRemovals = 0
        var lateMessages = 0
    }

    static let nodeCount = 5
    static let tickInterval: Int64 = 10
    static let clientTimeout: Int64 = 300

    init(_ options: Options) {
        self.options = options
        self.random = SplitMix64(seed: options.seed)
        // Per-seed profile: a single voter and two voters (no fault tolerance, quorum = all) take
        // paths a three- or five-voter group never does; then batching from one entry per append
        // up, a small or larger window, the protocol switches and the latency class.
        var voters = 1 + Int(self.random.below(5))
        self.initialVoters = voters
        self.maxBytesPerMessage = [1, 64, 128, 256][Int(self.random.below(4))]
        self.maxInflight = [1, 4, 16][Int(self.random.below(3))]
        self.preVote = self.random.below(4) != 0
        self.checkQuorum = self.random.below(4) != 0
        switch self.random.below(4) {
        case 0: (self.baseDelay, self.slowChance, self.slowExtra) = (20, 0.10, 200)
        case 1: (self.baseDelay, self.slowChance, self.slowExtra) = (60, 0.10, 500)
        default: break  // half the seeds: the LAN defaults
        }
        if options.classicProfile {
            voters = voters % 2 == 0 ? 3 : 5
            self.initialVoters = voters
            (self.preVote, self.checkQuorum) = (true, true)
            (self.baseDelay, self.slowChance, self.slowExtra) = (6, 0.05, 40)
        }
        let configuration = ClusterConfiguration(voters: (1...voters).map { ReplicaID(UInt64($0)) })
        for raw in 1...Self.nodeCount {
            let state: PersistentState = raw <= voters ? .bootstrap(configuration) : .joining
            self.nodes.append(Node(durable: state))
            self.start(raw - 1)
        }
        let n = Self.nodeCount
        self.blocked = Array(repeating: Array(repeating: false, count: n), count: n)
        let lossy = self.random.below(3)  // a third of the seeds have a clean network
        self.loss = (0..<n).map { _ in (0..<n).map { _ in lossy == 0 ? 0 : Double(self.random.below(15)) / 100 } }
        self.duplication = Double(self.random.below(4)) / 100
        self.clients = Array(repeating: Client(), count: 3)
        for client in self.clients.indices { self.queue.push(Int64(self.random.below(50)), .invoke(client: client)) }
        self.queue.push(100 + Int64(self.random.below(200)), .fault(recurring: true))
        self.queue.push(150 + Int64(self.random.below(200)), .admin)
    }

    func settings(_ node: Int) -> RaftConfiguration {
        var settings = RaftConfiguration(id: ReplicaID(UInt64(node + 1)), randomSeed: self.options.seed)
        settings.electionTicks = 10
        settings.heartbeatTicks = 2
        settings.maxBytesPerMessage = self.maxBytesPerMessage
        settings.maxInflightMessages = self.maxInflight
        settings.preVote = self.preVote
        settings.checkQuorum = self.checkQuorum
        settings.mutations = self.options.mutations
        return settings
    }

    func start(_ node: Int) {
        self.nodes[node].raft = try! RaftNode(settings: self.settings(node), restoring: self.nodes[node].durable)
        self.nodes[node].directory = Directory(decoding: self.nodes[node].durable.snapshot.data)
        self.marks[node] = Marks(commit: self.nodes[node].durable.snapshot.metadata.index)
        let phase = Int64(self.random.below(UInt64(Self.tickInterval))) + 1
        self.queue.push(self.now + phase, .tick(node: node, incarnation: self.nodes[node].incarnation))
    }

    /// The seed's profile, for failure reports (the trace keeps only the end of a run).
    var profile: String {
        "\(self.initialVoters) voters, preVote \(self.preVote), checkQuorum \(self.checkQuorum), "
            + "maxBytes \(self.maxBytesPerMessage), inflight \(self.maxInflight), "
            + "delay 1...\(self.baseDelay) + \(self.slowChance) × <\(self.slowExtra) ms"
    }

    func log(_ text: @autoclosure () -> String) {
        guard self.options.trace else { return }
        self.events.append("\(self.now)ms \(text())")
        if self.events.count > 400 { self.events.removeFirst(100) }
    }

    func chance(_ p: Double) -> Bool { Double(self.random.below(1_000_000)) < p * 1_000_000 }

    // MARK: - Run

    /// Runs to the end (or the first violation); returns the violation, if any.
    func run() -> String? {
        while let item = self.queue.pop(), item.time <= self.options.duration, self.violation == nil {
            self.now = item.time
            self.eventCount += 1
            if let node = self.target(of: item.payload), self.nodes[node].pausedUntil > self.now {
                self.queue.push(self.nodes[node].pausedUntil, item.payload)  // handled on resume
                continue
            }
            self.handle(item.payload)
        }
        if self.violation == nil { self.checkHistory() }
        return self.violation
    }

    func target(of event: Event) -> Int? {
        switch event {
        case .tick(let node, _), .persisted(let node, _), .arrive(let node, _): node
        case .deliver(let message): Int(message.to.rawValue) - 1
        default: nil
        }
    }

    func handle(_ event: Event) {
        switch event {
        case .tick(let node, let incarnation):
            guard incarnation == self.nodes[node].incarnation, self.nodes[node].raft != nil else { return }
            self.nodes[node].raft!.tick()
            self.queue.push(self.now + Self.tickInterval, .tick(node: node, incarnation: incarnation))
            self.pump(node)
        case .deliver(let message):
            let from = Int(message.from.rawValue) - 1
            let to = Int(message.to.rawValue) - 1
            guard self.nodes[to].raft != nil, !self.blocked[from][to] else { return }
            self.log("deliver \(message)")
            self.nodes[to].raft!.step(message)
            self.pump(to)
        case .persisted(let node, let incarnation):
            guard incarnation == self.nodes[node].incarnation else { return }
            self.completeWrite(node)
        case .restart(let node):
            self.log("restart n\(node + 1)")
            self.start(node)
            self.check(node)
        case .invoke(let client):
            self.invoke(client)
        case .arrive(let node, let operation):
            self.arrive(node, operation)
        case .timeout(let client, let operation):
            if self.clients[client].waitingFor == operation {
                // No answer: try another replica next time.
                self.clients[client].leaderGuess = Int(self.random.below(UInt64(Self.nodeCount)))
                self.finishClient(client)
            }
        case .fault(let recurring):
            self.injectFault()
            guard recurring else { return }
            self.queue.push(
                self.now + self.faultInterval + Int64(self.random.below(UInt64(3 * self.faultInterval))),
                .fault(recurring: true)
            )
        case .heal(let generation):
            if generation == self.partitionGeneration { self.healPartition() }
        case .admin:
            self.changeMembership()
            self.queue.push(self.now + 80 + Int64(self.random.below(200)), .admin)
        }
    }

    // MARK: - The shell

    /// Hands the next `Ready` to the disk: it is durable after a short virtual delay.
    func pump(_ node: Int) {
        self.check(node)
        guard self.nodes[node].writing == nil, self.nodes[node].inspect({ $0.hasReady }) == true else { return }
        var ready = self.nodes[node].raft!.ready()
        if self.options.sendBeforePersist {
            for message in ready.messages { self.send(message) }
            ready.messages = []
        }
        self.nodes[node].writing = ready
        if ready.entries.isEmpty && ready.hardState == nil && ready.snapshot == nil {
            self.completeWrite(node)
        } else {
            var delay = 1 + Int64(self.random.below(8))
            // Now and then the disk stalls (a pause of the shell, not the replica): the replica
            // keeps stepping while its write and everything behind it wait.
            if !self.options.classicProfile && self.chance(0.005) { delay += Int64(self.random.below(300)) }
            self.queue.push(self.now + delay, .persisted(node: node, incarnation: self.nodes[node].incarnation))
        }
    }

    func completeWrite(_ node: Int) {
        guard let ready = self.nodes[node].writing else { return }
        self.nodes[node].writing = nil
        if let softState = ready.softState {
            self.log("n\(node + 1) is \(softState.role) (leader \(softState.leader.map(\.description) ?? "-"))")
            if softState.role == .leader { self.stats.elections += 1 }
        }
        // 1. Persist.
        if let snapshot = ready.snapshot {
            self.nodes[node].durable.snapshot = snapshot
            self.nodes[node].durable.entries = []
        }
        if let first = ready.entries.first {
            let keep = Int(first.index) - Int(self.nodes[node].durable.snapshot.metadata.index) - 1
            self.nodes[node].durable.entries.removeSubrange(max(0, keep)...)
            self.nodes[node].durable.entries += ready.entries
        }
        if let hardState = ready.hardState { self.nodes[node].durable.hardState = hardState }
        // 2. Apply.
        if let snapshot = ready.snapshot { self.restore(node, snapshot) }
        for entry in ready.committedEntries { self.apply(node, entry) }
        // 3. Send.
        for message in ready.messages { self.send(message) }
        self.nodes[node].reads += ready.readStates.map { (Int($0.context), $0.index) }
        self.nodes[node].raft!.advance(ready)
        self.serveReads(node)
        self.compactIfNeeded(node)
        self.pump(node)
    }

    func restore(_ node: Int, _ snapshot: Snapshot) {
        let directory = Directory(decoding: snapshot.data)
        self.nodes[node].directory = directory
        let index = Int(snapshot.metadata.index)
        if index < self.stateAfter.count, let expected = self.stateAfter[index], expected != directory {
            self.fail("n\(node + 1) restored a snapshot at \(index) whose state differs from the applied one")
        }
        self.log("n\(node + 1) restored snapshot at \(index)")
    }

    func apply(_ node: Int, _ entry: LogEntry) {
        let index = Int(entry.index)
        while self.appliedEntries.count <= index {
            self.appliedEntries.append(nil)
            self.stateAfter.append(nil)
        }
        if let applied = self.appliedEntries[index], applied != entry {
            self.fail("state machine safety: n\(node + 1) applies \(entry) at \(index), another applied \(applied)")
            return
        }
        let firstApply = self.appliedEntries[index] == nil
        self.appliedEntries[index] = entry
        var result: Directory.Result?
        var operation = -1
        switch entry.payload {
        case .command(let bytes):
            let decoded = Directory.decode(bytes)
            result = self.nodes[node].directory.apply(decoded.operation, key: decoded.key)
            operation = decoded.id
        case .configuration(let change, _):
            // Term 1 holds only the bootstrap entries (the first election is for term 2).
            if node == 0 && entry.term > 1 { self.stats.configurationChanges += 1 }
            // Configuration entries are proposed by the leader of their term only.
            switch change {
            case .addVoter where firstApply: self.stats.votersAdded += 1
            case .remove(let id) where firstApply && self.leaderOfTerm[entry.term] == id:
                self.stats.leaderRemovals += 1
            default: break
            }
            self.log("n\(node + 1) applies \(change)")
        case .empty:
            break
        }
        if let expected = self.stateAfter[index], expected != self.nodes[node].directory {
            self.fail("state machine safety: n\(node + 1) state after \(index) differs")
        }
        self.stateAfter[index] = self.nodes[node].directory
        // Answer the client whose proposal landed here, or learn that it was overwritten.
        var remaining: [(position: LogPosition, operation: Int)] = []
        for proposal in self.nodes[node].proposals {
            if proposal.position.index > entry.index {
                remaining.append(proposal)
            } else if proposal.position.index == entry.index {
                if proposal.position.term == entry.term, proposal.operation == operation, let result {
                    self.respond(proposal.operation, result)
                } else {
                    self.drop(proposal.operation)
                }
            }
        }
        self.nodes[node].proposals = remaining
    }

    func serveReads(_ node: Int) {
        let applied = self.nodes[node].inspect { $0.appliedIndex }!
        let reads = self.nodes[node].reads
        self.nodes[node].reads = reads.filter { read in read.index.map { $0 > applied } ?? true }
        for read in reads {
            guard let index = read.index, index <= applied else { continue }
            let key = self.operationKinds[read.operation].key
            self.respond(read.operation, .value(self.nodes[node].directory.slots[key]))
        }
    }

    func compactIfNeeded(_ node: Int) {
        guard let (index, first) = self.nodes[node].inspect({ ($0.appliedIndex, $0.firstIndex) }), index >= first + 10
        else { return }
        let snapshot = try! self.nodes[node].raft!.compact(through: index, data: self.nodes[node].directory.encoded)
        self.nodes[node].durable.snapshot = snapshot
        self.nodes[node].durable.entries.removeAll { $0.index <= index }
    }

    func send(_ message: RaftMessage) {
        let from = Int(message.from.rawValue) - 1
        let to = Int(message.to.rawValue) - 1
        if case .snapshot = message.kind { self.stats.snapshotsSent += 1 }
        if self.chance(self.loss[from][to]) { return }
        let copies = self.chance(self.duplication) ? 2 : 1
        for _ in 0..<copies {
            var delay = 1 + Int64(self.random.below(UInt64(self.baseDelay)))
            if self.chance(self.slowChance) { delay += Int64(self.random.below(UInt64(self.slowExtra))) }  // reordering
            if delay >= 100 { self.stats.lateMessages += 1 }
            self.queue.push(self.now + delay, .deliver(message))
        }
    }
}
