@testable import Consensus

/// A small synchronous harness for interaction tests (like etcd's `network`): every `Ready` is
/// persisted, applied and advanced at once, and messages are delivered until none is left, except
/// those that `drop` rejects or that cross a cut link.
struct TestCluster {
    var nodes: [RaftNode]
    var storage: [PersistentState]
    var applied: [[LogEntry]]
    var readStates: [[ReadState]]
    var snapshotsReceived: [Int]
    var cut: [(from: UInt64, to: UInt64)] = []
    var drop: (RaftMessage) -> Bool = { _ in false }
    /// Every message delivered or dropped, in order.
    var trace: [RaftMessage] = []

    /// Replicas `1...count`; the first `voters` start as voters, the rest join with an empty log.
    init(count: Int, voters: Int? = nil, tweak: (inout RaftConfiguration) -> Void = { _ in }) {
        let voterIDs = (1...(voters ?? count)).map { ReplicaID(UInt64($0)) }
        self.nodes = []
        self.storage = []
        for raw in 1...count {
            let state: PersistentState =
                raw <= voterIDs.count ? .bootstrap(ClusterConfiguration(voters: voterIDs)) : .joining
            self.storage.append(state)
            self.nodes.append(Self.make(raw, state, tweak))
        }
        self.applied = Array(repeating: [], count: count)
        self.readStates = Array(repeating: [], count: count)
        self.snapshotsReceived = Array(repeating: 0, count: count)
    }

    /// Replicas restored from the given persistent states (ids `1...states.count`).
    init(states: [PersistentState], tweak: (inout RaftConfiguration) -> Void = { _ in }) {
        self.storage = states
        self.nodes = states.enumerated().map { Self.make($0.offset + 1, $0.element, tweak) }
        self.applied = Array(repeating: [], count: states.count)
        self.readStates = Array(repeating: [], count: states.count)
        self.snapshotsReceived = Array(repeating: 0, count: states.count)
    }

    static func make(_ raw: Int, _ state: PersistentState, _ tweak: (inout RaftConfiguration) -> Void) -> RaftNode {
        var settings = RaftConfiguration(id: ReplicaID(UInt64(raw)), randomSeed: 42)
        settings.electionTicks = 10
        settings.heartbeatTicks = 1
        tweak(&settings)
        return try! RaftNode(settings: settings, restoring: state)
    }

    subscript(_ raw: Int) -> RaftNode {
        get { self.nodes[raw - 1] }
        set { self.nodes[raw - 1] = newValue }
    }

    /// The terms of the entries in the log (from its first index), for compact assertions.
    func log(_ raw: Int) -> [UInt64] {
        self[raw].entries(from: self[raw].firstIndex, through: self[raw].lastIndex).map(\.term)
    }

    mutating func isolate(_ raw: Int) {
        for other in 1...self.nodes.count where other != raw {
            self.cut.append((UInt64(raw), UInt64(other)))
            self.cut.append((UInt64(other), UInt64(raw)))
        }
    }

    mutating func heal() {
        self.cut = []
        self.drop = { _ in false }
    }

    /// Starts an election at `raw` (as its election timer would) and delivers everything.
    mutating func campaign(_ raw: Int) {
        self[raw].campaign(self[raw].settings.preVote ? .preElection : .election)
        self.deliverAll()
    }

    mutating func tick(_ raw: Int, times: Int = 1) {
        for _ in 0..<times {
            self[raw].tick()
            self.deliverAll()
        }
    }

    mutating func tickAll(times: Int = 1) {
        for _ in 0..<times {
            for raw in 1...self.nodes.count { self[raw].tick() }
            self.deliverAll()
        }
    }

    @discardableResult
    mutating func propose(_ raw: Int, _ text: String) -> LogPosition? {
        let position = try? self[raw].propose(Array(text.utf8))
        self.deliverAll()
        return position
    }

    /// Processes one `Ready` of each replica as the shell would and returns the messages sent.
    mutating func processReadies() -> [RaftMessage] {
        var messages: [RaftMessage] = []
        for position in self.nodes.indices where self.nodes[position].hasReady {
            let ready = self.nodes[position].ready()
            if let snapshot = ready.snapshot {
                self.storage[position].snapshot = snapshot
                self.storage[position].entries = []
                self.snapshotsReceived[position] += 1
            }
            if let first = ready.entries.first {
                self.storage[position].entries.removeAll { $0.index >= first.index }
                self.storage[position].entries += ready.entries
            }
            if let hardState = ready.hardState { self.storage[position].hardState = hardState }
            self.applied[position] += ready.committedEntries
            self.readStates[position] += ready.readStates
            messages += ready.messages
            self.nodes[position].advance(ready)
        }
        return messages
    }

    mutating func deliverAll(limit: Int = 100_000) {
        var budget = limit
        while budget > 0 {
            let messages = self.processReadies()
            if messages.isEmpty && !self.nodes.contains(where: \.hasReady) { return }
            for message in messages {
                budget -= 1
                self.trace.append(message)
                let isCut = self.cut.contains { $0.from == message.from.rawValue && $0.to == message.to.rawValue }
                if isCut || self.drop(message) { continue }
                self.nodes[Int(message.to.rawValue) - 1].step(message)
            }
        }
    }

    /// Compacts `raw`'s log through its applied index, as an application taking a snapshot would.
    mutating func compact(_ raw: Int) {
        let index = self[raw].appliedIndex
        let snapshot = try! self[raw].compact(through: index, data: Array("state@\(index)".utf8))
        self.storage[raw - 1].snapshot = snapshot
        self.storage[raw - 1].entries.removeAll { $0.index <= index }
    }
}
