import Directory
import Foundation
import Membership
import Ownership

/// A clustered node decides through its cluster log: the directory (as this node applied it) says
/// which namespaces exist and who owns each at which epoch, and the ownership machine serves,
/// moves and archives accordingly. Gossip only says who is alive and where they listen; rendezvous
/// placement says where a namespace should live, and moves bring it there through the log.
extension Cluster {
    var ownership: OwnershipService? { self.service.ownership }

    /// The cluster log opened (before it applies anything new): the directory and the ownership
    /// machine take over this node's namespaces.
    func attachOwnership(_ log: DirectoryLog) async {
        let directory = DirectoryService(
            log: log,
            registry: self.service.registry,
            nodeID: self.selfID,
            zone: self.configuration.zone,
            logger: self.logger,
            mirrors: false
        )
        // Observed before the service reads the directory: nothing applied meanwhile is missed.
        let observer = DeferredObserver()
        log.observe { change in await observer.changed(change.namespaces) }
        do {
            let ownership = try OwnershipService(
                nodeID: self.selfID,
                log: log,
                registry: self.service.registry,
                files: self.files,
                archives: self.service.archives,
                supervisor: self.service.supervisor,
                peers: ClusterOwnershipPeers(cluster: self),
                drainTimeout: self.configuration.handoffDrainTimeout,
                metrics: self.metrics,
                logger: self.logger
            )
            await observer.attach { names in await ownership.applied(names) }
            self.placeFollowersOfNewNamespaces(directory)
            self.service.attach(directory: directory, ownership: ownership)
            await ownership.start()
        } catch {
            self.logger.critical(
                "cannot read what this node holds; it serves no namespace",
                metadata: ["error": "\(error.message)"]
            )
        }
    }

    /// Where a request for `name` is served, as the applied directory says.
    func resolveOwned(_ name: String, forwarded: Bool) async throws(NodeError) -> Resolution {
        guard let ownership else {
            throw NodeError.noClusterLog
        }
        if ownership.isImporting(name) {
            throw NodeError(
                .ownerUnavailable,
                "namespace \(name) is being imported into the cluster log; retry shortly",
                status: 503,
                retryAfter: 1
            )
        }
        switch await ownership.admit(name, timeout: .seconds(15)) {
        case .serve:
            return .local
        case .forward(let owner):
            if forwarded {
                // The entry node's directory lags this one's: it retries once with the owner named.
                throw NodeError(.misdirected, "this member does not own namespace \(name)", status: 421, owner: owner)
            }
            guard let member = self.view.member(owner), member.status != .left else {
                throw NodeError.ownerUnavailable(
                    "namespace \(name) is owned by member \(owner), which is not in the cluster",
                    owner: owner
                )
            }
            guard member.status != .dead else {
                throw NodeError.ownerUnavailable(
                    "namespace \(name) is owned by member \(owner), which is down",
                    owner: owner
                )
            }
            return .forward(member)
        case .absent:
            return try self.placeNew(name, forwarded: forwarded)
        case .unavailable(.moving):
            throw NodeError.ownerUnavailable("namespace \(name) is moving between members; retry shortly", owner: nil)
        case .unavailable(.archiving):
            throw NodeError(.backendUnavailable, "namespace \(name) is being archived", status: 503, retryAfter: 1)
        case .unavailable(.notHere):
            throw NodeError.ownerUnavailable(
                "namespace \(name) is owned by this member but its files are not here",
                owner: self.selfID
            )
        }
    }

    /// Waits (up to 3 s) until this node's directory no longer names `owner` as `name`'s owner: a
    /// member with a newer directory said this node owns it.
    func awaitDirectory(_ name: String, notOwnedBy owner: String) async {
        guard let ownership else { return }
        let deadline = ContinuousClock.now + .seconds(3)
        while ownership.admission(name) == .forward(owner: owner) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Where a namespace that does not exist yet is created: on the first member of its placement
    /// ranking that is alive (its owner when it is), so a dead member never blocks creation; the
    /// rebalance later moves it to its owner. A forwarded request is created where it arrived.
    private func placeNew(_ name: String, forwarded: Bool) throws(NodeError) -> Resolution {
        let view = self.view
        let eligible = view.placement.ranking(of: name).compactMap { view.member($0.id) }.filter { member in
            member.id.rawValue == self.selfID ? self.canOwn : member.canReceive
        }
        guard let target = eligible.first else {
            throw NodeError.ownerUnavailable("no active member can own namespace \(name) right now", owner: nil)
        }
        if target.id.rawValue == self.selfID || (forwarded && self.canOwn) { return .absent }
        if forwarded {
            throw NodeError(
                .misdirected,
                "this member cannot own namespace \(name)",
                status: 421,
                owner: target.id.rawValue
            )
        }
        return .forward(target)
    }

    /// Whether this node may take namespaces: active and not a witness.
    private var canOwn: Bool {
        self.phase.withLock { $0 } == .active && !self.configuration.isWitness
    }

    /// Starts moving the namespaces this node holds to their owners (a few at a time; the
    /// ownership machine carries each move through). Returns how many copies here are still
    /// elsewhere than their owner, sealed ones in the middle of a move included.
    @discardableResult
    func rebalance() async -> Int {
        // Every copy here placed here, and neither the copies nor the placement changed since:
        // nothing to read (every copy row) or hash again; this runs every 2 s.
        let view = self.view
        let staged = self.files.stagedVersions()
        let settled = SettledPlacement(
            copiesVersion: self.service.registry.copiesVersion,
            members: view.placement.members
        )
        if staged.isEmpty, self.settledPlacement.withLock({ $0 }) == settled { return 0 }
        guard let ownership, let copies = try? self.service.registry.copies() else {
            return max(self.service.registry.count, 1)
        }
        // Labelled staging is a move in flight too, until the log settles it.
        var misplaced = staged.filter { copies[$0.key] == nil }.count
        var movable: [(String, MemberState)] = []
        for (name, copy) in copies.sorted(by: { $0.key < $1.key }) {
            if case .sealed = copy {
                misplaced += 1
                continue
            }
            guard let owner = view.owner(of: name), owner.id.rawValue != self.selfID else { continue }
            misplaced += 1
            movable.append((name, owner))
        }
        // A leaving node has a deadline: it tries every move again rather than back off.
        let leaving = self.phase.withLock { $0 } == .leaving
        var budget = Self.concurrentMoves - ownership.movesInProgress
        for (name, owner) in movable where owner.canReceive && budget > 0 {
            if await ownership.startMove(name, to: owner.id.rawValue, ignoringBackoff: leaving) { budget -= 1 }
        }
        self.settledPlacement.withLock { $0 = misplaced == 0 ? settled : nil }
        return misplaced
    }

    /// How many copies (held or sealed) this node has: a leaving node goes when none is left.
    var copiesHeld: Int {
        guard self.ownership != nil, let copies = try? self.service.registry.copies() else {
            return self.service.registry.count
        }
        // Copies, records not adopted yet, and labelled staging a move may still install here.
        var names = Set(copies.keys)
        names.formUnion(self.service.registry.all().map(\.name))
        names.formUnion(self.files.stagedVersions().keys)
        return names.count
    }

    /// Moves running at once: each is mostly waiting on the network and the target's disk.
    static let concurrentMoves = 4

    // MARK: - Receiving a move

    /// The owner of `name` sealed it at a version and asks for its files as the next version:
    /// copies what staging lacks, checks the digests, labels the copy (durable), or refuses.
    func receiveTransfer(_ name: String, request body: TransferRequest) async throws(NodeError) {
        guard let ownership else { throw NodeError.noClusterLog }
        let version = OwnershipMachine.Version(createdAt: body.createdAt, epoch: body.epoch)
        guard ownership.acceptsTransfer(name, version) else {
            throw NodeError(
                .misdirected,
                "this member does not take \(name) at \(version) (its directory differs)",
                status: 409
            )
        }
        let expected = try body.digests()
        try self.requireActiveToReceive(name)
        try await ownership.withStaging(name) { () async throws(NodeError) in
            guard await ownership.transferStarts(name, version) else {
                throw NodeError(.misdirected, "the directory changed before \(name) was copied", status: 409)
            }
            try await self.receiveVerified(name, expected: expected, from: body.from)
            try self.requireActiveToReceive(name)
            guard await ownership.staged(name, version, expected: expected) else {
                throw NodeError(.misdirected, "the directory changed while \(name) was copied", status: 409)
            }
        }
    }

    /// Only an active member takes namespaces in: a joining one is not placed yet, a leaving one
    /// would leave with them. (A label written just before leaving began keeps the leave waiting.)
    private func requireActiveToReceive(_ name: String) throws(NodeError) {
        guard self.phase.withLock({ $0 }) == .active else {
            throw NodeError(.misdirected, "this member does not take namespaces in now (\(name))", status: 409)
        }
    }

    /// The owner of `name` is about to move it here and asks this node to copy what it can ahead of
    /// the seal. Refused while a verified copy is labelled in staging.
    func receivePrecopy(_ name: String, from: String) async throws(NodeError) -> Int {
        guard let ownership else { throw NodeError.noClusterLog }
        try self.requireActiveToReceive(name)
        return try await ownership.withStaging(name) { () async throws(NodeError) -> Int in
            guard ownership.precopyMayWrite(name) else {
                throw NodeError(.misdirected, "a verified copy of \(name) waits for the log here", status: 409)
            }
            return try await self.precopy(name, from: from)
        }
    }
}

/// `OwnershipPeers` over the peer listeners: the target copies from this node.
struct ClusterOwnershipPeers: OwnershipPeers {
    let cluster: Cluster

    func precopy(_ name: String, to node: String) async -> Bool {
        guard let member = self.cluster.view.member(node), member.canReceive else { return false }
        return await self.call(
            "precopy",
            of: name,
            on: member,
            body: PrecopyRequest(from: self.cluster.advertisedPeerAddress),
            answer: PrecopyAnswer.self,
            failure: "move could not start: the target could not copy the files"
        )
    }

    func transfer(
        _ name: String,
        to node: String,
        _ version: OwnershipMachine.Version,
        digests: [NamespaceFiles.Kind: NamespaceFiles.Digest]
    ) async -> Bool {
        guard let member = self.cluster.view.member(node), let db = digests[.db], let wal = digests[.wal] else {
            return false
        }
        let body = TransferRequest(
            from: self.cluster.advertisedPeerAddress,
            createdAt: version.createdAt,
            epoch: version.epoch,
            db: db,
            wal: wal,
            history: digests[.history]
        )
        return await self.call(
            "transfer",
            of: name,
            on: member,
            body: body,
            answer: TransferAnswer.self,
            failure: "move transfer failed; the log settles it"
        )
    }

    /// POSTs `/_peer/v1/namespaces/<name>/<step>` to `member`; true on 200, logged otherwise.
    private func call<Body: Encodable & Sendable, Answer: Decodable & Sendable>(
        _ step: String,
        of name: String,
        on member: MemberState,
        body: Body,
        answer: Answer.Type,
        failure: String
    ) async -> Bool {
        guard let peers = self.cluster.peers else { return false }
        let status = try? await peers.call(
            .POST,
            member.metadata.peerAddress,
            "/_peer/v1/namespaces/\(name)/\(step)",
            body: body,
            headers: [(ClusterHeaders.node.rawName, self.cluster.selfID)],
            timeout: .seconds(600),
            answer: answer
        ).status
        if status != 200 {
            self.cluster.logger.warning(
                "\(failure)",
                metadata: ["namespace": "\(name)", "move.to": "\(member.id.rawValue)", "status": "\(status ?? 0)"]
            )
        }
        return status == 200
    }
}
