@testable import Consensus

/// The world around the replicas: clients, faults and the membership administrator.
extension RaftSimulation {
    static let operationCap = 150

    func stamp() -> UInt64 {
        self.clock += 1
        return self.clock
    }

    // MARK: - Clients

    func invoke(_ client: Int) {
        guard self.clients[client].waitingFor == nil, self.operationKinds.count < Self.operationCap else { return }
        let key = Int(self.random.below(UInt64(Directory.keys)))
        let owner = UInt8(1 + self.random.below(5))
        let operation: Directory.Operation
        switch self.random.below(10) {
        case 0..<4: operation = .get
        case 4..<6: operation = .create(owner: owner)
        default:
            let known = self.clients[client].lastEpoch[key]
            operation = .move(owner: owner, expectedEpoch: self.random.below(4) == 0 ? known + 1 : known)
        }
        let id = self.operationKinds.count
        self.operationKinds.append((key, operation))
        self.historyIndex.append(self.history.count)
        self.history.append(
            .init(id: id, key: key, operation: operation, call: self.stamp(), response: nil, result: nil)
        )
        self.clients[client].waitingFor = id
        var node = self.clients[client].leaderGuess
        if self.random.below(5) == 0 { node = Int(self.random.below(UInt64(Self.nodeCount))) }
        self.log("client \(client) invokes #\(id) \(operation) on key \(key) at n\(node + 1)")
        self.queue.push(self.now + 1, .arrive(node: node, operation: id))
        self.queue.push(self.now + Self.clientTimeout, .timeout(client: client, operation: id))
    }

    func arrive(_ node: Int, _ operation: Int) {
        guard self.nodes[node].raft != nil else { return self.drop(operation) }
        let (key, kind) = self.operationKinds[operation]
        do {
            if kind == .get {
                try self.nodes[node].raft!.readIndex(context: UInt64(operation))
                self.nodes[node].reads.append((operation, nil))
            } else {
                let position = try self.nodes[node].raft!.propose(Directory.encode(id: operation, key: key, kind))
                self.nodes[node].proposals.append((position, operation))
            }
        } catch {
            if let client = self.clients.firstIndex(where: { $0.waitingFor == operation }) {
                self.clients[client].leaderGuess =
                    error.leader.map { Int($0.rawValue) - 1 } ?? Int(self.random.below(UInt64(Self.nodeCount)))
            }
            self.drop(operation)
        }
        self.pump(node)
    }

    /// The operation definitely had no effect (refused, or its entry was overwritten).
    func drop(_ operation: Int) {
        if let position = self.historyIndex[operation], self.history[position].response == nil {
            self.historyIndex[operation] = nil
        }
        if let client = self.clients.firstIndex(where: { $0.waitingFor == operation }) { self.finishClient(client) }
    }

    func respond(_ operation: Int, _ result: Directory.Result) {
        guard let position = self.historyIndex[operation], self.history[position].response == nil else { return }
        self.history[position].response = self.stamp()
        self.history[position].result = result
        self.log("#\(operation) -> \(result)")
        if let client = self.clients.firstIndex(where: { $0.waitingFor == operation }) {
            let key = self.history[position].key
            switch (self.history[position].operation, result) {
            case (_, .value(let slot?)): self.clients[client].lastEpoch[key] = slot.epoch
            case (.create, .ok): self.clients[client].lastEpoch[key] = 1
            case (.move(_, let epoch), .ok): self.clients[client].lastEpoch[key] = epoch + 1
            default: break
            }
            self.finishClient(client)
        }
    }

    func finishClient(_ client: Int) {
        if let operation = self.clients[client].waitingFor, let position = self.historyIndex[operation],
            self.history[position].response == nil, self.operationKinds[operation].operation == .get
        {
            self.historyIndex[operation] = nil  // an unanswered read has no effect
        }
        self.clients[client].waitingFor = nil
        self.queue.push(self.now + 5 + Int64(self.random.below(35)), .invoke(client: client))
    }

    // MARK: - Faults

    func injectFault() {
        var node = Int(self.random.below(UInt64(Self.nodeCount)))
        // Half the faults hit a leader: its uncommitted tail is what the interesting cases are made of.
        if self.random.below(2) == 0,
            let leader = self.nodes.indices.first(where: { self.nodes[$0].raft?.role == .leader })
        {
            node = leader
        }
        switch self.random.below(10) {
        case 0, 1:
            // Often in the middle of a write: that is when a shell that sends too early loses state.
            let writing = self.nodes.indices.filter { self.nodes[$0].writing != nil }
            if !writing.isEmpty && self.random.below(2) == 0 {
                node = writing[Int(self.random.below(UInt64(writing.count)))]
            }
            guard self.nodes.filter({ $0.raft == nil }).count < 2, self.nodes[node].raft != nil else { return }
            self.crash(node)
        case 2, 3:
            // Short stalls (below the election timeout: the replica resumes into a burst of stale
            // events) as well as long ones (the others elect and move on without it).
            let pause =
                self.options.classicProfile
                ? 110 + Int64(self.random.below(700))
                : self.random.below(3) == 0 ? 5 + Int64(self.random.below(95)) : 110 + Int64(self.random.below(1_100))
            self.nodes[node].pausedUntil = max(self.nodes[node].pausedUntil, self.now + pause)
            self.log("pause n\(node + 1) for \(pause)ms")
        case 4, 5, 6:
            self.partition()
        case 7:
            self.healPartition()
        default:
            break
        }
    }

    func crash(_ node: Int) {
        self.log("crash n\(node + 1)\(self.nodes[node].writing == nil ? "" : " (losing the write in flight)")")
        self.stats.crashes += 1
        self.nodes[node].raft = nil
        self.nodes[node].writing = nil
        self.nodes[node].incarnation += 1
        self.nodes[node].proposals = []
        self.nodes[node].reads = []
        self.queue.push(self.now + 20 + Int64(self.random.below(400)), .restart(node: node))
    }

    func partition() {
        let n = Self.nodeCount
        self.healPartition()
        self.partitionGeneration += 1
        let kind = self.random.below(4)
        switch kind {
        case 0:  // isolate one, often the leader
            var node = Int(self.random.below(UInt64(n)))
            if self.random.below(2) == 0,
                let leader = self.nodes.indices.first(where: { self.nodes[$0].raft?.role == .leader })
            {
                node = leader
            }
            for other in 0..<n where other != node {
                self.blocked[node][other] = true
                self.blocked[other][node] = true
            }
        case 1:  // two sides
            let side = (0..<n).map { _ in self.random.below(2) }
            for a in 0..<n { for b in 0..<n where side[a] != side[b] { self.blocked[a][b] = true } }
        case 2:  // one-way links
            for _ in 0..<(1 + self.random.below(3)) {
                let a = Int(self.random.below(UInt64(n)))
                let b = Int(self.random.below(UInt64(n)))
                self.blocked[a][b] = a != b
            }
        default:  // bridge: two sides that only the bridge node connects
            let bridge = Int(self.random.below(UInt64(n)))
            let side = (0..<n).map { _ in self.random.below(2) }
            for a in 0..<n where a != bridge {
                for b in 0..<n where b != bridge && side[a] != side[b] { self.blocked[a][b] = true }
            }
        }
        self.log("partition (kind \(kind)): \(self.blocked.map { $0.map { $0 ? "x" : "." }.joined() })")
        self.queue.push(
            self.now + 100 + Int64(self.random.below(500)),
            .heal(generation: self.partitionGeneration)
        )
    }

    func healPartition() {
        self.log("heal")
        self.partitionGeneration += 1
        for a in self.blocked.indices { for b in self.blocked.indices { self.blocked[a][b] = false } }
    }

    // MARK: - Membership

    func changeMembership() {
        let leaders = self.nodes.indices.filter {
            self.nodes[$0].raft?.role == .leader && self.nodes[$0].pausedUntil <= self.now
        }
        guard let leader = leaders.max(by: { self.nodes[$0].raft!.term < self.nodes[$1].raft!.term }) else { return }
        let configuration = self.nodes[leader].raft!.configuration
        let leaderID = self.nodes[leader].raft!.id
        var candidates: [ConfigurationChange] = []
        // A voter may join directly, with an empty (or stale) log: it counts towards the quorum
        // at once, before it has caught up.
        for raw in 1...UInt64(Self.nodeCount) where !configuration.contains(ReplicaID(raw)) {
            candidates.append(.addLearner(ReplicaID(raw)))
            if !self.options.classicProfile { candidates.append(.addVoter(ReplicaID(raw))) }
        }
        for learner in configuration.learners {
            candidates += [.promoteLearner(learner), .promoteLearner(learner), .remove(learner)]
        }
        // Any voter may go while one remains; the leader's own removal twice as often (it leads
        // a configuration without itself until the change commits, then hands over).
        if self.options.classicProfile {
            if configuration.voters.count > 3 { candidates += configuration.voters.map { .remove($0) } }
        } else if configuration.voters.count > 1 {
            candidates += configuration.voters.map { .remove($0) } + [.remove(leaderID)]
        }
        if self.random.below(4) == 0 {
            let target = configuration.voters[Int(self.random.below(UInt64(configuration.voters.count)))]
            do {
                try self.nodes[leader].raft!.transferLeadership(to: target)
                self.log("n\(leader + 1) transfers leadership to \(target)")
            } catch {
                self.log("n\(leader + 1) refuses a transfer to \(target): \(error)")
            }
            return self.pump(leader)
        }
        guard !candidates.isEmpty else { return }
        let change = candidates[Int(self.random.below(UInt64(candidates.count)))]
        do {
            let position = try self.nodes[leader].raft!.proposeChange(change)
            self.log("n\(leader + 1) proposes \(change) at \(position.index)")
            // Often strike while the change is uncommitted: a fault (half the time on the leader)
            // in the window where old and new configurations coexist.
            if !self.options.classicProfile && self.random.below(2) == 0 {
                self.queue.push(self.now + Int64(self.random.below(30)), .fault(recurring: false))
            }
        } catch {
            self.log("n\(leader + 1) refuses \(change): \(error)")
        }
        self.pump(leader)
    }
}
