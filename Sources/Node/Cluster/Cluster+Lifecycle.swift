import Foundation
import Logging
import Membership
import MembershipTransport

extension Cluster {
    /// Runs membership, the join, and the rebalancing loop until cancelled.
    func run() async throws {
        guard let membership else { return }
        let (changes, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await membership.run { event in
                    switch event {
                    case .memberChanged:
                        signal.yield()
                    case .conflictingIdentity(let other):
                        // The process that already serves keeps serving; one that has not started
                        // serving yet is the second with this id and must not.
                        guard !self.isReady else { return }
                        self.identityConflict.withLock { $0 = other.metadata.gossipAddress }
                        signal.yield()
                    }
                }
            }
            if let clusterLog = self.clusterLog, let peers = self.peers {
                group.addTask {
                    await clusterLog.run(membership: membership, peers: peers) { log in
                        await self.attachOwnership(log)
                    }
                    // Ends only when cancelled: the group is stopping anyway.
                    try await Task.sleep(for: .seconds(86_400 * 365))
                }
            }
            if let shipper = self.shipper {
                group.addTask {
                    await shipper.run()
                    try await Task.sleep(for: .seconds(86_400 * 365))
                }
                group.addTask {
                    // Copies of namespaces this node no longer follows are dropped.
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(10))
                        if self.isReady { await self.replicas.sweep() }
                    }
                }
            }
            group.addTask {
                if self.phase.withLock({ $0 }) == .joining { await self.join() }
                try self.refuseOnIdentityConflict()
                // Rebalance on every membership change and every few seconds.
                let tick = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(2))
                        signal.yield()
                    }
                }
                defer { tick.cancel() }
                for await _ in changes {
                    if Task.isCancelled { break }
                    try self.refuseOnIdentityConflict()
                    self.publishMemberMetrics()
                    if self.phase.withLock({ $0 }) == .active && self.isReady {
                        await self.rebalance()
                        await self.assignFollowers()
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Throws when another live process claimed this node's id before this one started serving.
    func refuseOnIdentityConflict() throws(NodeError) {
        guard let other = self.identityConflict.withLock({ $0 }) else { return }
        self.logger.critical(
            "another live process already uses this node id; refusing to serve",
            metadata: ["node.id": "\(self.selfID)", "membership.address": "\(other)"]
        )
        throw NodeError(
            .invalidConfiguration,
            "another live process (gossip address \(other)) already uses node id \(self.selfID): give each node its own TURSO_NODE_ID"
        )
    }

    /// Joining: once in touch with the cluster, announce `active`. The owners then move the
    /// namespaces this node should own here, each copied while its owner keeps serving.
    func join() async {
        guard let membership else { return }
        let started = ContinuousClock.now
        while !Task.isCancelled && !membership.isSynced {
            if membership.members.count == 1 && started.duration(to: .now) > .seconds(3)
                && !membership.hasSeedsOtherThanSelf
            {
                break  // the first member of a new cluster: nobody to join
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        // Give a live process with this id the time to hear of this one and answer, so that a
        // conflict is seen before this node serves anything.
        if membership.hasSeedsOtherThanSelf {
            try? await Task.sleep(for: membership.configuration.membership.identitySettleTime)
        }
        if self.identityConflict.withLock({ $0 }) != nil { return }
        await membership.setLifecycle(.active)
        self.phase.withLock { $0 = .active }
        self.logger.info(
            "joined the cluster",
            metadata: [
                "cluster.members": "\(membership.members.count)",
                "join.ms": "\(started.duration(to: .now).milliseconds)",
            ]
        )
    }

    /// Graceful leave: announce `leaving` (the others stop routing here), hand every namespace to its
    /// owner, then announce `left`. A namespace that cannot be handed off in time stays here, and the
    /// node then exits without announcing `left`, so the others treat it as down (503) rather than
    /// creating the namespace anew.
    func leave() async {
        guard let membership else { return }
        let started = ContinuousClock.now
        self.phase.withLock { $0 = .leaving }
        await membership.setLifecycle(.leaving)
        self.logger.info("leaving the cluster", metadata: ["namespaces.held": "\(self.copiesHeld)"])
        try? await Task.sleep(for: .milliseconds(500))
        let deadline = started + self.configuration.leaveTimeout
        while self.copiesHeld > 0 && ContinuousClock.now < deadline {
            if self.view.receivers.isEmpty { break }
            if await self.rebalance() == 0 { break }
            try? await Task.sleep(for: .milliseconds(500))
        }
        let left = self.copiesHeld
        if left == 0 {
            await membership.leave()
            self.logger.info("left the cluster", metadata: ["leave.ms": "\(started.duration(to: .now).milliseconds)"])
        } else {
            await membership.setLifecycle(.active)
            self.logger.error(
                "could not hand off every namespace; exiting without leaving: they are unavailable until this node returns",
                metadata: ["namespaces.held": "\(left)"]
            )
        }
    }

    func publishMemberMetrics() {
        var counts: [String: Int] = [:]
        for member in self.view.members {
            counts["\(member.metadata.lifecycle)/\(member.status)", default: 0] += 1
        }
        self.metrics.setMemberStates(counts)
    }
}
