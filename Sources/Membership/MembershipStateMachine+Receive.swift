extension MembershipStateMachine {
    /// MUST be called for every envelope received. Returns actions to perform in order.
    public mutating func receive(_ envelope: MembershipEnvelope, now: Instant) -> [Action] {
        var actions: [Action] = []
        let sender = envelope.sender.id
        guard sender != self.me.id || envelope.sender.metadata.instance != self.me.metadata.instance else {
            return actions  // our own message looped back
        }
        self.apply(envelope.sender, now: now, &actions)
        for update in envelope.updates { self.apply(update, now: now, &actions) }
        let senderAddress = envelope.sender.metadata.gossipAddress
        switch envelope.message {
        case .ping(let sequence):
            let reply = self.envelope(.ack(sequence: sequence), to: sender)
            actions.append(.send(reply, to: .member(sender, address: senderAddress)))
        case .ack(let sequence):
            if let probe = self.probe, probe.sequence == sequence, probe.target == sender {
                self.probeSucceeded()
            } else if let relay = self.relays.removeValue(forKey: sequence) {
                let reply = self.envelope(.indirectAck(sequence: relay.originSequence), to: relay.origin)
                actions.append(.send(reply, to: .member(relay.origin, address: relay.originAddress)))
            }
        case .pingRequest(let sequence, let target):
            if let address = self.records[target]?.state.metadata.gossipAddress, target != self.me.id {
                let relaySequence = self.nextSequence()
                self.relays[relaySequence] = Relay(
                    origin: sender,
                    originAddress: senderAddress,
                    originSequence: sequence,
                    deadline: now + self.configuration.probeTimeout
                )
                actions.append(
                    .send(
                        self.envelope(.ping(sequence: relaySequence), to: target),
                        to: .member(target, address: address)
                    )
                )
            } else {
                let reply = self.envelope(.nack(sequence: sequence), to: sender)
                actions.append(.send(reply, to: .member(sender, address: senderAddress)))
            }
        case .indirectAck(let sequence):
            if let probe = self.probe, probe.sequence == sequence { self.probeSucceeded() }
        case .nack(let sequence):
            if self.probe?.sequence == sequence { self.probe!.nacks += 1 }
        case .gossip:
            break
        case .syncRequest(let digest):
            let states = self.statesNewer(than: digest)
            let reply = self.envelope(.syncResponse(states: states, digest: self.view), to: sender)
            actions.append(.send(reply, to: .member(sender, address: senderAddress)))
        case .syncResponse(let states, let digest):
            self.synced = true
            for state in states { self.apply(state, now: now, &actions) }
            let missing = self.statesNewer(than: digest)
            if !missing.isEmpty {
                let reply = self.envelope(.syncDelta(states: missing), to: sender)
                actions.append(.send(reply, to: .member(sender, address: senderAddress)))
            }
        case .syncDelta(let states):
            for state in states { self.apply(state, now: now, &actions) }
        }
        return actions
    }

    /// States this node has that `digest` lacks or has older.
    func statesNewer(than digest: [MemberDigest]) -> [MemberState] {
        var theirs: [NodeID: MemberDigest] = [:]
        for entry in digest { theirs[entry.id] = entry }
        return self.members.filter { state in
            guard let known = theirs[state.id] else { return true }
            return state.digest.isNewer(
                than: MemberState(metadata: state.metadata, status: known.status, incarnation: known.incarnation)
            )
        }
    }

    mutating func probeSucceeded() {
        self.probe = nil
        self.localHealth = max(0, self.localHealth - 1)
    }

    /// Applies a gossiped state, keeping SWIM's precedence. Changes are re-gossiped and reported.
    mutating func apply(_ state: MemberState, now: Instant, _ actions: inout [Action]) {
        if state.id == self.me.id {
            self.applyAboutMe(state, &actions)
            return
        }
        guard var record = self.records[state.id] else {
            self.records[state.id] = Record(state: state, since: now)
            self.statusChanged(state.id, from: nil, now: now)
            self.broadcasts.enqueue(state)
            actions.append(.memberChanged(state, previous: nil))
            return
        }
        guard state.supersedes(record.state) else {
            // The same suspicion from another accuser is an independent confirmation (Lifeguard).
            if state.status == .suspect, record.state.status == .suspect, state.incarnation == record.state.incarnation,
                let accuser = state.accuser, var suspicion = record.suspicion,
                suspicion.accusers.insert(accuser).inserted
            {
                suspicion.deadline =
                    suspicion.started
                    + self.configuration.suspicionTimeout(
                        members: self.clusterSize,
                        confirmations: suspicion.accusers.count - 1
                    )
                record.suspicion = suspicion
                self.records[state.id] = record
                self.broadcasts.enqueue(state)
            }
            return
        }
        let previous = record.state.status
        record.state = state
        record.since = now
        record.suspicion = nil
        self.records[state.id] = record
        self.statusChanged(state.id, from: previous, now: now)
        self.broadcasts.enqueue(state)
        actions.append(.memberChanged(state, previous: previous))
    }

    /// Keeps `targets`, `suspects`, `departed` and suspicion timers in step with a member's status.
    mutating func statusChanged(_ id: NodeID, from previous: MemberStatus?, now: Instant) {
        guard let record = self.records[id] else { return }
        let status = record.state.status
        let wasTarget = previous == .alive || previous == .suspect
        let isTarget = status == .alive || status == .suspect
        if isTarget && !wasTarget {
            self.targets.insert(id, at: self.targets.insertionIndex(of: id))
            // Probe newcomers within this round: append, then swap into a random remaining position.
            self.probeOrder.append(id)
            let remaining = self.probeOrder.count - self.probeIndex
            let position = self.probeIndex + Int(self.random.next() % UInt64(remaining))
            self.probeOrder.swapAt(position, self.probeOrder.count - 1)
        } else if !isTarget && wasTarget {
            let index = self.targets.insertionIndex(of: id)
            if index < self.targets.count && self.targets[index] == id { self.targets.remove(at: index) }
        }
        if status == .suspect {
            self.suspects.insert(id)
            let accusers: Set<NodeID> = record.state.accuser.map { [$0] } ?? []
            self.records[id]!.suspicion = Suspicion(
                started: now,
                accusers: accusers,
                deadline: now + self.configuration.suspicionTimeout(members: self.clusterSize, confirmations: 0)
            )
        } else {
            self.suspects.remove(id)
        }
        if status == .dead || status == .left { self.departed.insert(id) } else { self.departed.remove(id) }
    }

    /// Gossip about this node: refute suspicion and death, step over a previous life's incarnation,
    /// and notice another live process claiming this id.
    mutating func applyAboutMe(_ state: MemberState, _ actions: inout [Action]) {
        let otherProcess = state.metadata.instance != self.me.metadata.instance
        if otherProcess, state.status == .alive, state.incarnation >= self.me.incarnation,
            self.reportedConflicts.insert(state.metadata.instance).inserted
        {
            actions.append(.conflictingIdentity(state))
        }
        guard state.incarnation >= self.me.incarnation else { return }
        if !otherProcess && state.status == self.me.status && state.incarnation == self.me.incarnation { return }
        if state.status == .suspect || state.status == .dead {
            self.localHealth = min(self.configuration.maxLocalHealth, self.localHealth + 1)
        }
        self.me.incarnation = state.incarnation.next
        self.broadcasts.enqueue(self.me)
    }
}

extension Array where Element == NodeID {
    /// Binary search in a sorted array: the index of `id`, or where it would be inserted.
    func insertionIndex(of id: NodeID) -> Int {
        var low = 0
        var high = self.count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < id { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
