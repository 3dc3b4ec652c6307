import Testing

@testable import Consensus

#if canImport(Glibc)
import Glibc
#endif

/// An adversarial fuzzer, independent of the project's simulation: a bag of in-flight messages
/// delivered in random order (drops, duplicates, arbitrary reordering), random interleaving of
/// step / ready / persist+advance per node, crashes that lose the write in flight, restarts,
/// random preVote/checkQuorum settings, clusters down to one voter, and invariants checked on
/// every node after every action, including message-level ones (a vote granted twice in a term,
/// a ReadIndex answer below what was committed when the read was requested).
final class ReviewFuzz {
    struct Node {
        var raft: RaftNode?
        var durable: PersistentState
        var writing: Ready?
        var incarnation = 0
        var lastApplied: UInt64 = 0
        var markCommit: UInt64 = 0
        var markVersion: UInt64 = .max
        var durableCommitHigh: UInt64 = 0
    }

    var random: SplitMix64
    var nodes: [Node] = []
    var bag: [RaftMessage] = []
    var violation: String?
    var trace: [String] = []
    let traceOn: Bool
    var steps = 0

    var leaderOfTerm: [UInt64: ReplicaID] = [:]
    var entryAt: [UInt64: [UInt64: (LogEntry, UInt64)]] = [:]
    var committedTerm: [UInt64: UInt64] = [:]
    var commitDeclaredInTerm: [UInt64: UInt64] = [:]  // index -> lowest term of a replica declaring it
    var maxCommit: UInt64 = 0
    var applied: [UInt64: LogEntry] = [:]
    var votes: [String: ReplicaID] = [:]
    var readFloor: [UInt64: UInt64] = [:]
    var configAt: [UInt64: ClusterConfiguration] = [:]
    var nextContext: UInt64 = 1
    var settingsTemplate: RaftConfiguration
    var stats: [String: Int] = [:]
    var tickWeight: UInt64 = 12
    var isolated: Int? = nil
    var side: [Bool] = []

    init(seed: UInt64, trace: Bool = false) {
        self.random = SplitMix64(seed: seed)
        self.traceOn = trace
        var t = RaftConfiguration(id: ReplicaID(1), randomSeed: seed)
        t.electionTicks = 5 + Int(self.random.below(6))
        t.heartbeatTicks = 1 + Int(self.random.below(2))
        t.maxBytesPerMessage = [1, 40, 200, 1 << 20][Int(self.random.below(4))]
        t.maxInflightMessages = [1, 2, 4, 64][Int(self.random.below(4))]
        t.preVote = self.random.below(3) != 0
        t.checkQuorum = self.random.below(3) != 0
        if let raw = getenv("REVIEW_MUTATIONS") {
            t.mutations = RaftConfiguration.Mutations(rawValue: UInt8(String(cString: raw)) ?? 0)
        }
        self.settingsTemplate = t
        let count = 2 + Int(self.random.below(4))
        let voters = 1 + Int(self.random.below(UInt64(count)))
        self.tickWeight = [2, 6, 12, 25][Int(self.random.below(4))]
        let configuration = ClusterConfiguration(voters: (1...voters).map { ReplicaID(UInt64($0)) })
        for raw in 1...count {
            self.nodes.append(Node(raft: nil, durable: raw <= voters ? .bootstrap(configuration) : .joining))
            self.start(raw - 1)
        }
        self.log(
            "n=\(count) voters=\(voters) preVote=\(t.preVote) checkQuorum=\(t.checkQuorum) et=\(t.electionTicks) hb=\(t.heartbeatTicks) bytes=\(t.maxBytesPerMessage) inflight=\(t.maxInflightMessages)"
        )
    }

    func log(_ s: @autoclosure () -> String) {
        guard self.traceOn else { return }
        self.trace.append("[\(self.steps)] \(s())")
        if self.trace.count > 3000 { self.trace.removeFirst(1000) }
    }

    func fail(_ s: String) {
        if self.violation == nil {
            self.violation = "step \(self.steps): \(s)"
            self.log("VIOLATION \(s)")
        }
    }

    func settings(_ i: Int) -> RaftConfiguration {
        var s = self.settingsTemplate
        s.id = ReplicaID(UInt64(i + 1))
        return s
    }

    func start(_ i: Int) {
        self.nodes[i].raft = try! RaftNode(settings: self.settings(i), restoring: self.nodes[i].durable)
        self.nodes[i].writing = nil
        self.nodes[i].lastApplied = self.nodes[i].durable.snapshot.metadata.index
        self.nodes[i].markCommit = self.nodes[i].raft!.commitIndex
        self.nodes[i].markVersion = .max
    }

    func chance(_ p: Double) -> Bool { Double(self.random.below(1_000_000)) < p * 1_000_000 }

    func pick<T>(_ a: [T]) -> T? { a.isEmpty ? nil : a[Int(self.random.below(UInt64(a.count)))] }

    var live: [Int] { self.nodes.indices.filter { self.nodes[$0].raft != nil } }
    var leaders: [Int] { self.live.filter { self.nodes[$0].raft!.role == .leader } }

    // MARK: - Shell

    func takeReady(_ i: Int) {
        guard self.nodes[i].writing == nil, self.nodes[i].raft!.hasReady else { return }
        self.nodes[i].writing = self.nodes[i].raft!.ready()
    }

    func completeWrite(_ i: Int) {
        guard let ready = self.nodes[i].writing else { return }
        self.nodes[i].writing = nil
        if let snapshot = ready.snapshot {
            self.nodes[i].durable.snapshot = snapshot
            self.nodes[i].durable.entries = []
        }
        if let first = ready.entries.first {
            self.nodes[i].durable.entries.removeAll { $0.index >= first.index }
            self.nodes[i].durable.entries += ready.entries
        }
        if let hs = ready.hardState { self.nodes[i].durable.hardState = hs }
        self.recordDurable(i)
        self.checkDurable(i)
        if let snapshot = ready.snapshot {
            if snapshot.metadata.index <= self.nodes[i].lastApplied {
                self.fail(
                    "n\(i + 1) restores snapshot \(snapshot.metadata.index) at or below applied \(self.nodes[i].lastApplied)"
                )
            }
            self.nodes[i].lastApplied = snapshot.metadata.index
            self.stats["snapshots", default: 0] += 1
            self.log("n\(i + 1) restored snapshot \(snapshot.metadata.index)")
        }
        for entry in ready.committedEntries {
            if entry.index != self.nodes[i].lastApplied + 1 {
                self.fail("n\(i + 1) applies \(entry.index) after \(self.nodes[i].lastApplied)")
            }
            self.nodes[i].lastApplied = entry.index
            if let other = self.applied[entry.index], other != entry {
                self.fail(
                    "state machine safety at \(entry.index): n\(i + 1) applies \(entry), another applied \(other)"
                )
            }
            self.applied[entry.index] = entry
        }
        for message in ready.messages { self.send(message) }
        for read in ready.readStates {
            let floor = self.readFloor[read.context] ?? 0
            self.stats["reads", default: 0] += 1
            if read.index < floor {
                self.fail(
                    "stale ReadIndex at n\(i + 1): read \(read.context) answered at \(read.index) but \(floor) was committed when it was requested"
                )
            }
        }
        self.nodes[i].raft!.advance(ready)
    }

    /// Entries become the reference for log matching once durable (`RaftSimulation` checks the
    /// in-memory log too, which caught a single-voter leader re-creating a position differently
    /// after a crash: see `aSingleVoterLeadsOnlyOnADurableVote`).
    func recordDurable(_ i: Int) {
        let d = self.nodes[i].durable
        var prev = d.snapshot.metadata.term
        for e in d.entries {
            if let known = self.entryAt[e.index]?[e.term] {
                if known.0 != e || known.1 != prev {
                    return self.fail("log matching (durable): n\(i + 1) has \(e) after \(prev), seen \(known)")
                }
            } else {
                self.entryAt[e.index, default: [:]][e.term] = (e, prev)
            }
            prev = e.term
        }
    }

    func checkDurable(_ i: Int) {
        let d = self.nodes[i].durable
        let last = d.snapshot.metadata.index + UInt64(d.entries.count)
        var expected = d.snapshot.metadata.index + 1
        for e in d.entries {
            if e.index != expected { self.fail("n\(i + 1) durable log not contiguous at \(e.index)") }
            expected += 1
        }
        if d.hardState.commit > last {
            self.fail("n\(i + 1) durable commit \(d.hardState.commit) beyond durable last index \(last)")
        }
        let effective = max(d.hardState.commit, d.snapshot.metadata.index)
        if effective < self.nodes[i].durableCommitHigh {
            self.fail("n\(i + 1) durable commit went back from \(self.nodes[i].durableCommitHigh) to \(effective)")
        }
        self.nodes[i].durableCommitHigh = max(self.nodes[i].durableCommitHigh, effective)
        for e in d.entries where e.index <= effective {
            if let t = self.committedTerm[e.index], t != e.term {
                self.fail("n\(i + 1) durably holds term \(e.term) at committed \(e.index) (term \(t))")
            }
        }
    }

    func send(_ message: RaftMessage) {
        if case .voteResponse(granted: true) = message.kind {
            let key = "\(message.term)/\(message.from.rawValue)"
            if let prior = self.votes[key], prior != message.to {
                self.fail("\(message.from) granted two votes in term \(message.term): \(prior) and \(message.to)")
            }
            self.votes[key] = message.to
        }
        if Int(message.to.rawValue) > self.nodes.count { return }
        self.bag.append(message)
    }

    // MARK: - Checks

    func checkAll() {
        for i in self.live where self.violation == nil { self.check(i) }
    }

    func check(_ i: Int) {
        let raft = self.nodes[i].raft!
        let name = "n\(i + 1)"
        if raft.role == .leader {
            if let other = self.leaderOfTerm[raft.term], other != raft.id {
                return self.fail("two leaders in term \(raft.term): \(other) and \(raft.id)")
            }
            self.leaderOfTerm[raft.term] = raft.id
        }
        if raft.log.version != self.nodes[i].markVersion {
            self.nodes[i].markVersion = raft.log.version
            var prev = raft.log.base.term
            for e in raft.log.entries {
                if let known = self.entryAt[e.index]?[e.term] {
                    if known.0 != e || known.1 != prev {
                        return self.fail("log matching: \(name) has \(e) after \(prev), seen \(known)")
                    }
                }
                prev = e.term
            }
        }
        if raft.commitIndex < self.nodes[i].markCommit {
            return self.fail("\(name) commit index went back from \(self.nodes[i].markCommit) to \(raft.commitIndex)")
        }
        if raft.commitIndex > self.nodes[i].markCommit {
            for index in (self.nodes[i].markCommit + 1)...raft.commitIndex {
                guard let t = raft.term(at: index) else { continue }
                if let known = self.committedTerm[index], known != t {
                    return self.fail("\(name) commits term \(t) at \(index), committed was \(known)")
                }
                self.committedTerm[index] = t
                self.commitDeclaredInTerm[index] = min(self.commitDeclaredInTerm[index] ?? .max, raft.term)
            }
            self.nodes[i].markCommit = raft.commitIndex
            self.maxCommit = max(self.maxCommit, raft.commitIndex)
        }
        if raft.role == .leader {
            // Leader completeness against the highest index committed in an earlier term.
            var high: UInt64 = 0
            for (index, term) in self.commitDeclaredInTerm where term < raft.term && index > high { high = index }
            if high > 0 && high >= raft.log.base.index && raft.term(at: high) != self.committedTerm[high] {
                return self.fail("leader completeness: \(name) leads \(raft.term) without committed \(high)")
            }
        }
        // Every replica agrees on the configuration in force at a committed index (and at its base).
        for index in [raft.commitIndex, raft.log.base.index] where index > 0 {
            let c = raft.log.configuration(at: index)
            // Bootstrap writes the founding configuration into the log: no committed index is ever
            // without one (a joiner's empty configuration there was the known liveness issue).
            if c == .empty { return self.fail("\(name) has no configuration at committed \(index)") }
            if let known = self.configAt[index], known != c {
                return self.fail("\(name) has configuration \(c) at committed \(index), another has \(known)")
            }
            self.configAt[index] = c
        }
        // The configuration in force must be derivable from the log: learners never voters.
        let c = raft.configuration
        for l in c.learners where c.voters.contains(l) { return self.fail("\(l) both learner and voter") }
    }

    // MARK: - Actions

    func step() {
        self.steps += 1
        if self.random.below(100) < self.tickWeight {
            for i in self.live { self.nodes[i].raft!.tick() }
            self.checkAll()
            return
        }
        let roll = 12 + self.random.below(88)
        switch roll {
        case 0..<12:
            break
        case 12..<45:
            guard !self.bag.isEmpty else { return }
            let k = Int(self.random.below(UInt64(self.bag.count)))
            let m = self.chance(0.05) ? self.bag[k] : self.bag.remove(at: k)
            if self.chance(0.07) { return }  // lost
            let to = Int(m.to.rawValue) - 1
            let from = Int(m.from.rawValue) - 1
            if !self.side.isEmpty && self.side[from] != self.side[to] { return }
            guard self.nodes[to].raft != nil else { return }
            self.log("deliver \(m)")
            self.nodes[to].raft!.step(m)
        case 45..<62:
            if let i = self.pick(self.live) { self.takeReady(i) }
        case 62..<80:
            if let i = self.pick(self.live.filter { self.nodes[$0].writing != nil }) { self.completeWrite(i) }
        case 80..<86:
            if let i = self.pick(self.leaders) {
                let p = try? self.nodes[i].raft!.propose([UInt8(truncatingIfNeeded: self.steps)])
                if p != nil { self.stats["proposals", default: 0] += 1 }
            }
        case 86..<89:
            if let i = self.pick(self.leaders) {
                let c = self.nodes[i].raft!.configuration
                var changes: [ConfigurationChange] = []
                for raw in 1...UInt64(self.nodes.count) {
                    let id = ReplicaID(raw)
                    if !c.contains(id) { changes += [.addLearner(id), .addVoter(id)] }
                    if c.isLearner(id) { changes += [.promoteLearner(id), .remove(id)] }
                    if c.isVoter(id) { changes += [.remove(id)] }
                }
                if let change = self.pick(changes) {
                    if (try? self.nodes[i].raft!.proposeChange(change)) != nil {
                        self.stats["changes", default: 0] += 1
                        self.log("n\(i + 1) proposes \(change) -> \(self.nodes[i].raft!.configuration)")
                    }
                }
            }
        case 89:
            if let i = self.pick(self.leaders), let j = self.pick(self.nodes.indices.map({ $0 })) {
                self.nodes[i].raft!.reportSnapshot(to: ReplicaID(UInt64(j + 1)), failed: self.chance(0.5))
            }
            if let i = self.pick(self.leaders), let target = self.pick(self.nodes[i].raft!.configuration.voters) {
                if (try? self.nodes[i].raft!.transferLeadership(to: target)) != nil {
                    self.log("n\(i + 1) transfers to \(target)")
                }
            }
        case 90..<94:
            if let i = self.pick(self.leaders) {
                let context = self.nextContext
                self.nextContext += 1
                if (try? self.nodes[i].raft!.readIndex(context: context)) != nil {
                    self.readFloor[context] = self.maxCommit
                    self.log("n\(i + 1) readIndex \(context) floor \(self.maxCommit)")
                }
            }
        case 94..<97:
            if let i = self.pick(self.live) {
                let r = self.nodes[i].raft!
                let index = r.appliedIndex
                if index >= r.firstIndex, let snap = try? self.nodes[i].raft!.compact(through: index, data: []) {
                    self.nodes[i].durable.snapshot = snap
                    self.nodes[i].durable.entries.removeAll { $0.index <= index }
                    self.checkDurable(i)
                }
            }
        case 97:
            let live = self.live
            if live.count > 1, let i = self.pick(live), self.chance(0.08) {
                self.log("crash n\(i + 1)\(self.nodes[i].writing == nil ? "" : " losing a write")")
                self.nodes[i].raft = nil
                self.nodes[i].writing = nil
                self.nodes[i].incarnation += 1
            }
        case 98:
            guard self.chance(0.25) else { return }
            if self.side.isEmpty || self.chance(0.3) {
                // Often cut the leader off with a minority.
                self.side = self.nodes.indices.map { _ in self.random.below(2) == 0 }
                if let l = self.pick(self.leaders), self.chance(0.6) {
                    self.side = self.nodes.indices.map { $0 == l }
                }
                self.log("partition \(self.side)")
            } else {
                self.side = []
                self.log("heal")
            }
        default:
            if self.chance(0.3), let i = self.pick(self.nodes.indices.filter { self.nodes[$0].raft == nil }) {
                self.log("restart n\(i + 1)")
                self.start(i)
            }
        }
        if self.bag.count > 400 { self.bag.removeFirst(100) }
        self.checkAll()
    }

    func run(steps: Int) -> String? {
        for _ in 0..<steps {
            self.step()
            if self.violation != nil { break }
        }
        return self.violation
    }
}

@Suite("Adversarial fuzz")
struct AdversarialFuzzTests {
    static func env(_ name: String) -> UInt64? {
        guard let v = getenv(name) else { return nil }
        return UInt64(String(cString: v))
    }

    @Test func fuzzManySeeds() {
        let start = Self.env("REVIEW_SEED_START") ?? 1
        let count = Self.env("REVIEW_SEEDS") ?? 1000
        let steps = Int(Self.env("REVIEW_STEPS") ?? 4000)
        var failures: [UInt64] = []
        var totals: [String: Int] = [:]
        for seed in start..<(start + count) {
            let fuzz = ReviewFuzz(seed: seed)
            if let v = fuzz.run(steps: steps) {
                failures.append(seed)
                if failures.count <= 3 { print("REVIEW seed \(seed): \(v)") }
                if failures.count >= 20 { break }
            }
            for (k, v) in fuzz.stats { totals[k, default: 0] += v }
            totals["leaders", default: 0] += fuzz.leaderOfTerm.count
            totals["maxCommit", default: 0] += Int(fuzz.maxCommit)
        }
        print(
            "REVIEW fuzz \(count) seeds from \(start): \(failures.count) failures \(failures.prefix(20)) totals \(totals.sorted { $0.key < $1.key })"
        )
        #expect(failures.isEmpty)
    }

    @Test(.enabled(if: env("REVIEW_REPLAY") != nil)) func replay() {
        let seed = Self.env("REVIEW_REPLAY")!
        let steps = Int(Self.env("REVIEW_STEPS") ?? 4000)
        let fuzz = ReviewFuzz(seed: seed, trace: true)
        let v = fuzz.run(steps: steps)
        print(fuzz.trace.suffix(Int(Self.env("REVIEW_TAIL") ?? 300)).joined(separator: "\n"))
        print("REVIEW replay \(seed): \(v ?? "no violation")")
    }
}
