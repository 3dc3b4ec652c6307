import Consensus
import Directory

@testable import Ownership

/// Several nodes, each running an `OwnershipMachine` over its own durable storage, around one
/// replicated log of directory commands (the real `DirectoryState` rules). The log is modelled by
/// what Raft guarantees: one order of committed entries, applied by every node as a prefix at its
/// own pace. Everything else is adversarial and seeded: proposals commit late or never, answers
/// are lost or time out before the entry commits, transfers fail, land late or lose their
/// confirmation, nodes crash (losing what is not durable) and restart, requests are cut by a drain
/// timeout. After every step it checks that at most one node admits writes to a namespace, and
/// that every node that admits one holds every write acknowledged for it.
struct OwnershipSimulation {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private struct Storage {
        var files: [String: [Int]] = [:]
        var copies: [String: OwnershipMachine.Copy] = [:]
        var staging: [String: [OwnershipMachine.Version: [Int]]] = [:]
    }

    private struct Node {
        let id: String
        var machine: OwnershipMachine?
        var generation = 0
        /// Log entries applied to the directory (durable), and those the machine has been told of:
        /// the shell's observer follows the directory, so the machine may lag behind it.
        var applied = 0
        var observed = 0
        var directory = DirectoryState()
        var storage = Storage()
        var inFlight: [(name: String, write: Int)] = []
        /// Shell work started and not finished (lost with the process).
        var work: [OwnershipMachine.Action] = []
    }

    private struct Proposal {
        let node: Int
        let generation: Int
        let name: String?
        let command: DirectoryCommand
    }

    private struct Answer {
        let node: Int
        let generation: Int
        let name: String
        let outcome: OwnershipMachine.Outcome
        /// Delivered once the node has applied this many entries (0: at once).
        let after: Int
    }

    private struct LateTransfer {
        let to: Int
        let name: String
        let version: OwnershipMachine.Version
        let content: [Int]
    }

    static let names = ["a", "b"]

    private var random: SplitMix64
    private var nodes: [Node]
    private var log: [DirectoryCommand] = []
    private var committed = DirectoryState()
    private var proposals: [Proposal] = []
    private var answers: [Answer] = []
    private var late: [LateTransfer] = []
    private var acknowledged: [String: Set<Int>] = [:]
    private var nextWrite = 1
    private var nextCreation: UInt64 = 0
    private let mutations: Set<OwnershipMachine.Mutation>
    private(set) var trace: [String] = []
    private(set) var writesAcknowledged = 0
    private(set) var movesApplied = 0
    private(set) var reclaimsApplied = 0

    init(seed: UInt64, nodes count: Int = 3, mutations: Set<OwnershipMachine.Mutation> = []) {
        self.random = SplitMix64(seed: seed)
        self.mutations = mutations
        self.nodes = (0..<count).map { Node(id: "n\($0)") }
        // The members are registered before anything else.
        for node in self.nodes {
            self.commit(.joinMember(id: node.id, storageID: "s-\(node.id)", zone: ""))
            self.commit(.activateMember(id: node.id, storageID: "s-\(node.id)"))
        }
        for index in self.nodes.indices { self.restart(index) }
    }

    // MARK: - Running

    mutating func run(steps: Int) throws(Failure) {
        for _ in 0..<steps {
            self.step()
            try self.check()
        }
        // Let it settle: every node applies the whole log and pending work finishes.
        for index in self.nodes.indices where self.nodes[index].machine == nil { self.restart(index) }
        for _ in 0..<200 {
            for index in self.nodes.indices {
                while !self.nodes[index].inFlight.isEmpty { self.finishWrite(index) }
                while self.applyNext(index) || self.observeNext(index) {}
            }
            if !self.finishSomeWork(settling: true) && self.proposals.isEmpty { break }
            if !self.proposals.isEmpty { self.commitProposal(self.proposals.indices.first!) }
            try self.check()
        }
        try self.check()
        // Nothing is stuck: no archive is left half done, and every namespace is served by its owner
        // once everything settled.
        if let stuck = self.committed.namespaces.values.first(where: { $0.state == .archiving }) {
            throw Failure(description: "\(stuck.name) is still being archived by \(stuck.owner) after settling")
        }
        for (name, entry) in self.committed.namespaces where entry.state == .active {
            let owner = self.nodes.first { $0.id == entry.owner }!
            guard owner.machine?.admission(name, applied: owner.directory.namespaces[name]) == .serve else {
                throw Failure(
                    description:
                        "\(name) at epoch \(entry.epoch) is not served by its owner \(owner.id) after settling: \(String(describing: owner.machine?.admission(name, applied: owner.directory.namespaces[name])))"
                )
            }
        }
    }

    private mutating func pick(_ bound: Int) -> Int { Int(self.random.next() % UInt64(bound)) }
    private mutating func chance(_ percent: UInt64) -> Bool { self.random.next() % 100 < percent }

    private mutating func step() {
        let node = self.pick(self.nodes.count)
        let name = Self.names[self.pick(Self.names.count)]
        switch self.pick(100) {
        case 0..<24: self.write(node, name)
        case 24..<42: self.finishWrite(node)
        case 42..<47:
            let target = self.nodes[(node + 1 + self.pick(self.nodes.count - 1)) % self.nodes.count].id
            self.machine(node) { $0.startMove(name, to: target) }
        case 47..<48: self.machine(node) { $0.startArchive(name) }
        case 48..<62: _ = self.finishSomeWork(settling: false)
        case 62..<74: if !self.proposals.isEmpty { self.commitProposal(self.pick(self.proposals.count)) }
        case 74..<75: if !self.proposals.isEmpty { self.loseProposal(self.pick(self.proposals.count)) }
        case 75..<77: if !self.proposals.isEmpty { self.timeOut(self.pick(self.proposals.count)) }
        case 77..<90: _ = self.applyNext(node)
        case 90..<92: _ = self.observeNext(node)
        case 92..<94: self.deliverLate()
        case 94..<95: self.machine(node) { $0.drainTimedOut(name) }
        case 95..<97: self.crash(node)
        default: if self.nodes[node].machine == nil { self.restart(node) }
        }
    }

    /// Runs an input on a live node's machine and carries out the actions.
    private mutating func machine(_ index: Int, _ input: (inout OwnershipMachine) -> [OwnershipMachine.Action]) {
        guard var machine = self.nodes[index].machine else { return }
        let actions = input(&machine)
        self.nodes[index].machine = machine
        self.perform(index, actions)
    }

    // MARK: - Clients

    private mutating func write(_ index: Int, _ name: String) {
        guard var machine = self.nodes[index].machine else { return }
        let admission = machine.admit(name, applied: self.shellEntry(index, name))
        self.nodes[index].machine = machine
        switch admission {
        case .serve:
            self.nodes[index].inFlight.append((name, self.nextWrite))
            self.nextWrite += 1
        case .absent:
            // Auto-provisioning: create it with some owner (a lagging node may ask again).
            guard !self.proposals.contains(where: { $0.node == index && $0.command.namespaceName == name }) else {
                return
            }
            let owner = self.nodes[self.pick(self.nodes.count)].id
            self.nextCreation += 1
            let create = DirectoryCommand.createNamespace(
                name: name,
                owner: owner,
                origin: .auto,
                locked: false,
                ttlMilliseconds: nil,
                createdAt: self.nextCreation
            )
            self.proposals.append(
                Proposal(node: index, generation: self.nodes[index].generation, name: nil, command: create)
            )
        default:
            break
        }
    }

    /// A request ends: its write lands in whatever files the node has (the machine's admission is
    /// the only guard) and is acknowledged, unless the backend was stopped under it (`seal`,
    /// `archiveFiles`, a crash), which removed it from `inFlight`.
    private mutating func finishWrite(_ index: Int) {
        guard !self.nodes[index].inFlight.isEmpty else { return }
        let (name, write) = self.nodes[index].inFlight.remove(at: self.pick(self.nodes[index].inFlight.count))
        if self.nodes[index].storage.files[name] != nil {
            self.nodes[index].storage.files[name]!.append(write)
            self.acknowledged[name, default: []].insert(write)
            self.writesAcknowledged += 1
        }
        self.machine(index) { $0.finished(name) }
    }

    /// Stopping a backend fails the requests still running on it.
    private mutating func cutRequests(_ index: Int, _ name: String) {
        let cut = self.nodes[index].inFlight.filter { $0.name == name }.count
        self.nodes[index].inFlight.removeAll { $0.name == name }
        for _ in 0..<cut { self.machine(index) { $0.finished(name) } }
    }

    // MARK: - The shell

    private mutating func perform(_ index: Int, _ actions: [OwnershipMachine.Action]) {
        for action in actions {
            self.trace.append("\(self.nodes[index].id): \(action)")
            switch action {
            case .precopy, .seal, .transfer, .archiveFiles:
                self.nodes[index].work.append(action)
            case .propose(let name, let command):
                self.proposals.append(
                    Proposal(node: index, generation: self.nodes[index].generation, name: name, command: command)
                )
            case .unseal(let name, let version):
                self.nodes[index].storage.copies[name] = .held(version)
            case .install(let name, let version):
                let content = self.nodes[index].storage.staging[name]?[version] ?? []
                self.nodes[index].storage.files[name] = content
                self.nodes[index].storage.copies[name] = .held(version)
                self.nodes[index].storage.staging[name] = nil
            case .provision(let name, let version):
                self.nodes[index].storage.files[name] = []
                self.nodes[index].storage.copies[name] = .held(version)
            case .drop(let name, let keeping):
                self.cutRequests(index, name)
                self.nodes[index].storage.files[name] = nil
                self.nodes[index].storage.copies[name] = nil
                self.nodes[index].storage.staging[name] = self.nodes[index].storage.staging[name]?.filter {
                    $0.key == keeping
                }
            case .release:
                break
            }
        }
    }

    /// Finishes one piece of started shell work (a precopy, seal, transfer or archive).
    private mutating func finishSomeWork(settling: Bool) -> Bool {
        let busy = self.nodes.indices.filter { !self.nodes[$0].work.isEmpty && self.nodes[$0].machine != nil }
        guard !busy.isEmpty else { return false }
        let index = busy[self.pick(busy.count)]
        let action = self.nodes[index].work.removeFirst()
        self.trace.append("\(self.nodes[index].id): finishing \(action)")
        switch action {
        case .precopy(let name, _):
            let succeeded = settling || self.chance(90)
            self.machine(index) { $0.precopied(name, succeeded: succeeded) }
        case .seal(let name, let version):
            self.cutRequests(index, name)
            self.nodes[index].storage.copies[name] = .sealed(version)
            self.machine(index) { $0.sealed(name) }
        case .transfer(let name, let target, let version):
            let to = self.nodes.firstIndex { $0.id == target }!
            let content = self.nodes[index].storage.files[name] ?? []
            let transfer = LateTransfer(to: to, name: name, version: version, content: content)
            let roll = settling ? 0 : self.pick(100)
            if roll < 75 {
                let landed = self.land(transfer)
                self.machine(index) { $0.transferred(name, succeeded: landed) }
            } else {
                if roll < 90 {
                    self.late.append(transfer)  // failed, but the copy may still arrive later
                } else {
                    _ = self.land(transfer)  // landed or not; the answer was lost
                }
                self.machine(index) { $0.transferred(name, succeeded: false) }
            }
        case .archiveFiles(let name):
            self.cutRequests(index, name)
            self.nodes[index].storage.files[name] = nil
            self.nodes[index].storage.copies[name] = nil
            self.machine(index) { $0.archived(name) }
        default:
            break
        }
        return true
    }

    /// The target's side of a transfer: staged (durably) only if its machine accepts it.
    private mutating func land(_ transfer: LateTransfer) -> Bool {
        let applied = self.shellEntry(transfer.to, transfer.name)
        guard let machine = self.nodes[transfer.to].machine,
            machine.acceptsTransfer(transfer.name, transfer.version, applied: applied)
        else { return false }
        self.nodes[transfer.to].storage.staging[transfer.name, default: [:]][transfer.version] = transfer.content
        self.machine(transfer.to) { $0.staged(transfer.name, transfer.version, applied: applied) }
        return true
    }

    private mutating func deliverLate() {
        guard !self.late.isEmpty else { return }
        _ = self.land(self.late.remove(at: self.pick(self.late.count)))
    }

    // MARK: - The log

    @discardableResult
    private mutating func commit(_ command: DirectoryCommand) -> DirectoryOutcome {
        self.log.append(command)
        let before = command.namespaceName.flatMap { self.committed.namespaces[$0]?.owner }
        let outcome = self.committed.apply(DirectoryBatch(commands: [command]), at: UInt64(self.log.count))?.first
        if outcome == .applied {
            if case .guarded(_, .finishArchive(let name, _)) = command { self.acknowledged[name] = [] }
            if case .guarded(_, .moveNamespace(_, _, let owner)) = command, before != owner { self.movesApplied += 1 }
        }
        return outcome ?? .refused(.invalidTransition)
    }

    private mutating func commitProposal(_ position: Int) {
        let proposal = self.proposals.remove(at: position)
        let outcome = self.commit(proposal.command)
        self.trace.append(
            "log[\(self.log.count)] from \(self.nodes[proposal.node].id): \(proposal.command) -> \(outcome)"
        )
        if case .guarded(_, .moveNamespace(_, _, let owner)) = proposal.command, owner == self.nodes[proposal.node].id,
            outcome == .applied
        {
            self.reclaimsApplied += 1
        }
        guard let name = proposal.name, self.chance(85) else { return }  // or the answer is lost
        self.answers.append(
            Answer(
                node: proposal.node,
                generation: proposal.generation,
                name: name,
                outcome: outcome == .applied ? .applied : .refused,
                after: self.log.count
            )
        )
        self.deliverAnswers(proposal.node)
    }

    /// A leader change dropped it: the proposer hears "lost" (a refusal) or nothing definite.
    private mutating func loseProposal(_ position: Int) {
        let proposal = self.proposals.remove(at: position)
        guard let name = proposal.name else { return }
        let outcome: OwnershipMachine.Outcome = self.chance(50) ? .refused : .unknown
        self.answers.append(
            Answer(node: proposal.node, generation: proposal.generation, name: name, outcome: outcome, after: 0)
        )
        self.deliverAnswers(proposal.node)
    }

    /// The proposer stops waiting (unknown) while the entry may still commit later.
    private mutating func timeOut(_ position: Int) {
        let proposal = self.proposals[position]
        guard let name = proposal.name else { return }
        self.proposals[position] = Proposal(node: proposal.node, generation: -1, name: nil, command: proposal.command)
        self.answers.append(
            Answer(node: proposal.node, generation: proposal.generation, name: name, outcome: .unknown, after: 0)
        )
        self.deliverAnswers(proposal.node)
    }

    private mutating func deliverAnswers(_ index: Int) {
        let node = self.nodes[index]
        // A proposer is answered once the machine has seen its entry.
        let due = self.answers.filter { $0.node == index && $0.after <= node.observed }
        self.answers.removeAll { $0.node == index && $0.after <= node.observed }
        for answer in due where answer.generation == node.generation {
            self.machine(index) { $0.answered(answer.name, answer.outcome) }
        }
    }

    /// The entry a node's shell passes its machine: the shell reads the directory (durable), which
    /// the machine follows through an observer that may lag.
    private func shellEntry(_ index: Int, _ name: String) -> NamespaceEntry? {
        self.nodes[index].directory.namespaces[name]
    }

    /// The node applies the next committed entry, if it lags.
    private mutating func applyNext(_ index: Int) -> Bool {
        guard self.nodes[index].machine != nil, self.nodes[index].applied < self.log.count else { return false }
        let command = self.log[self.nodes[index].applied]
        self.nodes[index].applied += 1
        _ = self.nodes[index].directory.apply(
            DirectoryBatch(commands: [command]),
            at: UInt64(self.nodes[index].applied)
        )
        // Mostly the observer keeps up; sometimes it lags by several entries.
        if self.chance(80) { _ = self.observeNext(index) }
        return true
    }

    /// The node's observer tells its machine of the next applied entry (the entry as the
    /// directory has it now, which may be newer still).
    private mutating func observeNext(_ index: Int) -> Bool {
        let node = self.nodes[index]
        guard node.machine != nil, node.observed < node.applied else { return false }
        self.nodes[index].observed += 1
        if let name = self.log[node.observed].namespaceName {
            let entry = node.directory.namespaces[name]
            self.machine(index) { $0.applied(name, entry) }
        }
        self.deliverAnswers(index)
        return true
    }

    // MARK: - Crashes

    private mutating func crash(_ index: Int) {
        guard self.nodes[index].machine != nil else { return }
        self.trace.append("\(self.nodes[index].id): crash")
        self.nodes[index].machine = nil
        self.nodes[index].generation += 1
        self.nodes[index].inFlight = []
        self.nodes[index].work = []
    }

    private mutating func restart(_ index: Int) {
        self.trace.append("\(self.nodes[index].id): start")
        // The machine starts from the durable directory: it has seen everything applied.
        self.nodes[index].observed = self.nodes[index].applied
        let storage = self.nodes[index].storage
        var machine = OwnershipMachine(
            node: self.nodes[index].id,
            copies: storage.copies,
            staged: storage.staging.compactMapValues { staged in
                staged.keys.max { ($0.createdAt, $0.epoch) < ($1.createdAt, $1.epoch) }
            },
            directory: self.nodes[index].directory.namespaces,
            mutations: self.mutations
        )
        let actions = machine.start()
        self.nodes[index].machine = machine
        self.perform(index, actions)
    }

    // MARK: - Checks

    private func check() throws(Failure) {
        for name in Self.names {
            let serving = self.nodes.filter {
                $0.machine?.admission(name, applied: $0.directory.namespaces[name]) == .serve
            }
            guard serving.count <= 1 else {
                throw Failure(description: "two writers of \(name): \(serving.map(\.id))")
            }
            let writing = Set(self.nodes.filter { node in node.inFlight.contains { $0.name == name } }.map(\.id))
            guard writing.count <= 1 else {
                throw Failure(description: "requests for \(name) running on \(writing.sorted())")
            }
            let acknowledged = self.acknowledged[name] ?? []
            for node in serving {
                let files = Set(node.storage.files[name] ?? [])
                guard acknowledged.isSubset(of: files) else {
                    throw Failure(
                        description:
                            "\(node.id) serves \(name) without acknowledged writes \(acknowledged.subtracting(files).sorted())"
                    )
                }
            }
        }
    }
}
