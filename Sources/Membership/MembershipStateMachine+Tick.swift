extension MembershipStateMachine {
    /// MUST be called periodically (the shell: every ~1/5 of the gossip interval; the simulator: every
    /// step). Runs every timer that is due. Returns actions to perform in order.
    public mutating func tick(now: Instant) -> [Action] {
        var actions: [Action] = []
        if let last = self.lastTick, now - last > self.configuration.lateTickThreshold {
            // This node stalled (paused, starved, swapped): its own timeouts say nothing about the
            // others. Push pending deadlines past the stall and convict nobody until it probed again.
            let lateness = now - last
            if var probe = self.probe {
                probe.directDeadline = probe.directDeadline + lateness
                probe.endsAt = probe.endsAt + lateness
                self.probe = probe
            }
            for key in Array(self.relays.keys) { self.relays[key]!.deadline = self.relays[key]!.deadline + lateness }
            for id in self.suspects {
                if let suspicion = self.records[id]?.suspicion {
                    self.records[id]!.suspicion!.deadline = suspicion.deadline + lateness
                }
            }
            self.convictionsAllowedAt = now + self.scaled(self.configuration.probeInterval) * 2
        }
        self.lastTick = now
        if self.me.status == .left {
            self.fanOut(now: now, &actions)
            return actions
        }
        self.advanceProbe(now: now, &actions)
        self.expireRelays(now: now, &actions)
        self.expireSuspicions(now: now, &actions)
        self.startProbe(now: now, &actions)
        self.fanOut(now: now, &actions)
        self.synchronise(now: now, &actions)
        return actions
    }

    /// Graceful leave: announces `left` to several members at once; keep ticking briefly so the
    /// announcement spreads before the process exits.
    public mutating func leave(now: Instant) -> [Action] {
        var actions: [Action] = []
        self.me.status = .left
        self.me.metadata.lifecycle = .leaving
        self.me.incarnation = self.me.incarnation.next
        self.broadcasts.enqueue(self.me)
        for id in self.sample(self.targets, count: self.configuration.gossipFanout * 2) {
            self.send(.gossip, to: id, &actions)
        }
        return actions
    }

    /// An operator's decision that a dead member is gone for good: announces it as `left` on its
    /// behalf (at its own incarnation, which `left` supersedes). Returns nil unless the member is
    /// known and dead. Should it be alive after all, it refutes with a higher incarnation.
    public mutating func forget(_ id: NodeID, now: Instant) -> [Action]? {
        guard id != self.me.id, var state = self.records[id]?.state, state.status == .dead else { return nil }
        state.status = .left
        state.accuser = nil
        var actions: [Action] = []
        self.apply(state, now: now, &actions)
        self.nextGossipAt = now
        self.fanOut(now: now, &actions)
        return actions
    }

    /// Changes this node's metadata (e.g. joining → active) and announces it with a new incarnation.
    public mutating func updateMetadata(_ change: (inout MemberMetadata) -> Void, now: Instant) -> [Action] {
        let before = self.me.metadata
        change(&self.me.metadata)
        self.me.metadata.id = before.id
        self.me.metadata.instance = before.instance
        var actions: [Action] = []
        guard self.me.metadata != before else { return actions }
        self.me.incarnation = self.me.incarnation.next
        self.broadcasts.enqueue(self.me)
        // Start spreading at once rather than at the next fan-out tick.
        self.nextGossipAt = now
        self.fanOut(now: now, &actions)
        return actions
    }

    // MARK: timers

    mutating func advanceProbe(now: Instant, _ actions: inout [Action]) {
        guard var probe = self.probe else { return }
        guard self.records[probe.target].map({ $0.state.status == .alive || $0.state.status == .suspect }) == true
        else {
            self.probe = nil
            return
        }
        if !probe.indirect && now >= probe.directDeadline {
            probe.indirect = true
            let helpers = self.sample(
                self.targets.filter { $0 != probe.target && self.records[$0]?.state.status == .alive },
                count: self.configuration.indirectProbes
            )
            probe.expectedNacks = helpers.count
            self.probe = probe
            for helper in helpers {
                self.send(.pingRequest(sequence: probe.sequence, target: probe.target), to: helper, &actions)
            }
            return
        }
        guard probe.indirect, now >= probe.endsAt else { return }
        self.probe = nil
        // Lifeguard: missing nacks mean the problem may be ours; raise the local health multiplier.
        let missing = probe.expectedNacks == 0 ? 1 : probe.expectedNacks - probe.nacks
        self.localHealth = min(self.configuration.maxLocalHealth, self.localHealth + max(0, missing))
        guard now >= self.convictionsAllowedAt, var record = self.records[probe.target] else { return }
        if record.state.status == .suspect {
            // Already suspect: our failed probe is an independent confirmation (Lifeguard), which
            // shortens the timeout here and, gossiped, everywhere else.
            var confirmation = record.state
            confirmation.accuser = self.me.id
            self.apply(confirmation, now: now, &actions)
            return
        }
        guard record.state.status == .alive else { return }
        let previous = record.state.status
        record.state.status = .suspect
        record.state.accuser = self.me.id
        record.since = now
        self.records[probe.target] = record
        self.statusChanged(probe.target, from: previous, now: now)
        self.broadcasts.enqueue(record.state)
        actions.append(.memberChanged(record.state, previous: previous))
    }

    mutating func expireRelays(now: Instant, _ actions: inout [Action]) {
        guard !self.relays.isEmpty else { return }
        for key in self.relays.keys.sorted() where now >= self.relays[key]!.deadline {
            let relay = self.relays.removeValue(forKey: key)!
            let reply = self.envelope(.nack(sequence: relay.originSequence), to: relay.origin)
            actions.append(.send(reply, to: .member(relay.origin, address: relay.originAddress)))
        }
    }

    mutating func expireSuspicions(now: Instant, _ actions: inout [Action]) {
        guard !self.suspects.isEmpty, now >= self.convictionsAllowedAt else { return }
        for id in self.suspects.sorted() {
            guard var record = self.records[id], let suspicion = record.suspicion, now >= suspicion.deadline else {
                continue
            }
            record.state.status = .dead
            record.state.accuser = nil
            record.since = now
            self.records[id] = record
            self.statusChanged(id, from: .suspect, now: now)
            self.broadcasts.enqueue(record.state)
            actions.append(.memberChanged(record.state, previous: .suspect))
        }
    }

    mutating func startProbe(now: Instant, _ actions: inout [Action]) {
        guard self.probe == nil, now >= self.nextProbeAt, let target = self.nextProbeTarget() else { return }
        let interval = self.scaled(self.configuration.probeInterval)
        self.nextProbeAt = now + interval
        let sequence = self.nextSequence()
        self.probe = Probe(
            target: target,
            sequence: sequence,
            directDeadline: now + self.scaled(self.configuration.probeTimeout),
            endsAt: now + max(interval, self.scaled(self.configuration.probeTimeout) * 2)
        )
        self.send(.ping(sequence: sequence), to: target, &actions)
    }

    /// Round-robin over a shuffled list of live members; reshuffled after each full round.
    mutating func nextProbeTarget() -> NodeID? {
        guard !self.targets.isEmpty else { return nil }
        for _ in 0..<2 {
            while self.probeIndex < self.probeOrder.count {
                let candidate = self.probeOrder[self.probeIndex]
                self.probeIndex += 1
                if let status = self.records[candidate]?.state.status, status == .alive || status == .suspect {
                    return candidate
                }
            }
            self.probeOrder = self.targets
            self.probeOrder.shuffle(using: &self.random)
            self.probeIndex = 0
        }
        return nil
    }

    /// Spreads pending updates to a few random members every gossip interval.
    mutating func fanOut(now: Instant, _ actions: inout [Action]) {
        guard now >= self.nextGossipAt else { return }
        self.nextGossipAt = now + self.configuration.gossipInterval
        guard !self.broadcasts.isEmpty else { return }
        for id in self.sample(self.targets, count: self.configuration.gossipFanout) {
            guard !self.broadcasts.isEmpty else { break }
            self.send(.gossip, to: id, &actions)
        }
    }

    /// Push-pull with a live member, retries towards departed members (partition healing, restarts), joins through
    /// the seeds while alone, and forgets long-departed members.
    mutating func synchronise(now: Instant, _ actions: inout [Action]) {
        if now >= self.nextSyncAt {
            self.nextSyncAt = now + self.configuration.syncInterval
            if let id = self.sample(self.targets, count: 1).first {
                self.send(.syncRequest(digest: self.view), to: id, &actions)
            }
        }
        if now >= self.nextDeadRetryAt {
            self.nextDeadRetryAt = now + self.configuration.deadRetryInterval
            let departed = self.departed.sorted()
            for id in departed where now - self.records[id]!.since > self.configuration.deadRetention {
                self.records[id] = nil
                self.departed.remove(id)
            }
            // Members that left are retried too (one of each kind per round, so many departures
            // never crowd out a partitioned member): one that restarts at its address (a first
            // member without seeds, after a graceful stop) is found again and refutes its departure.
            for status in [MemberStatus.dead, .left] {
                let candidates = departed.filter { self.records[$0]?.state.status == status }
                if let id = self.sample(candidates, count: 1).first {
                    self.send(.syncRequest(digest: self.view), to: id, &actions)
                }
            }
        }
        // Join: a full exchange with the seeds (or, without seeds, with a member that contacted us),
        // repeated until one answers, even if pings from others already taught us some members.
        if !self.synced, now >= self.nextJoinAt, !self.seeds.isEmpty || !self.targets.isEmpty {
            self.nextJoinAt = now + self.configuration.joinRetryInterval
            if self.seeds.isEmpty {
                if let id = self.sample(self.targets, count: 1).first {
                    self.send(.syncRequest(digest: self.view), to: id, &actions)
                }
            } else {
                for seed in self.seeds {
                    let envelope = self.envelope(.syncRequest(digest: self.view), to: nil)
                    actions.append(.send(envelope, to: .address(seed)))
                }
            }
        } else if self.synced, self.targets.isEmpty, !self.seeds.isEmpty, now >= self.nextJoinAt {
            // Alone again (everyone else dead or unreachable): keep knocking at the seeds.
            self.nextJoinAt = now + self.configuration.joinRetryInterval
            for seed in self.seeds {
                let envelope = self.envelope(.syncRequest(digest: self.view), to: nil)
                actions.append(.send(envelope, to: .address(seed)))
            }
        }

    }
}
