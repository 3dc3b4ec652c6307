import Foundation
import Logging
import Membership
import ServerSupport

extension Cluster {
    /// Hands `name` to `target` (see `HandoffStateMachine` for the protocol): the target copies the
    /// files while this node still serves, then this node fences the namespace (new requests wait),
    /// lets in-flight requests finish, stops the backend, and the target copies the tail, verifies
    /// both files by SHA-256 and registers the namespace. Only then does this node forget it and send
    /// the waiting requests on. Returns true when the namespace moved.
    @discardableResult
    func handOff(_ name: String, to target: MemberState) async -> Bool {
        guard let peers else { return false }
        return await self.locks.withLock(name) { () async -> Bool in
            guard self.holds(name) else { return false }
            let address = target.metadata.peerAddress
            let to = target.id.rawValue
            let headers = [(ClusterHeaders.node.rawName, self.selfID)]
            var machine = HandoffStateMachine()
            var action = machine.start()
            var fencedAt = ContinuousClock.now
            var sealed: (record: NamespaceRecord, digests: [NamespaceFiles.Kind: NamespaceFiles.Digest])?
            while true {
                switch action {
                case .precopy:
                    let status = try? await peers.call(
                        .POST,
                        address,
                        "/_peer/v1/namespaces/\(name)/precopy",
                        body: PrecopyRequest(from: self.advertisedPeerAddress),
                        headers: headers,
                        timeout: .seconds(600),
                        answer: PrecopyAnswer.self
                    ).status
                    if status != 200 {
                        self.logger.warning(
                            "handoff could not start: the target could not copy the files",
                            metadata: ["namespace": "\(name)", "handoff.to": "\(to)", "status": "\(status ?? 0)"]
                        )
                    }
                    action = machine.precopied(status == 200)
                case .fence:
                    fencedAt = .now
                    let drain = self.configuration.handoffDrainTimeout
                    let claimed = await self.gate.fence(name, drainTimeout: drain)
                    // Deleted or archived while its requests drained: nothing to hand over.
                    action = machine.fenced(claimed: claimed, stillHeld: self.service.registry.record(name) != nil)
                case .seal:
                    await self.service.supervisor.stop(name)
                    do {
                        guard let record = self.service.registry.record(name) else { throw NodeError.io("gone") }
                        let files = self.files
                        let digests = try await BlockingIO.run { () throws(NodeError) in
                            do { return try files.liveDigests(name) } catch { throw NodeError.io("\(error)") }
                        }
                        try await self.service.registry.markHandoff(
                            name,
                            target: to,
                            now: NamespaceService.nowMilliseconds()
                        )
                        sealed = (record, digests)
                    } catch {
                        self.logger.error("handoff aborted", metadata: ["namespace": "\(name)", "error": "\(error)"])
                    }
                    action = machine.sealed(sealed != nil)
                case .commit:
                    let body = CommitRequest(
                        from: self.advertisedPeerAddress,
                        record: sealed!.record,
                        db: sealed!.digests[.db]!,
                        wal: sealed!.digests[.wal]!,
                        history: sealed!.digests[.history]
                    )
                    let status = try? await peers.call(
                        .POST,
                        address,
                        "/_peer/v1/namespaces/\(name)/commit",
                        body: body,
                        headers: headers,
                        timeout: .seconds(600),
                        answer: HeldAnswer.self
                    ).status
                    if status == 409 {
                        self.logger.error(
                            "the target already holds a namespace of this name: two copies exist; keep one (archive the other by hand)",
                            metadata: ["namespace": "\(name)", "handoff.to": "\(to)"]
                        )
                    }
                    action = machine.committed(
                        status == 200
                            ? .accepted : (status.map { (400..<500).contains($0) } == true ? .refused : .noAnswer)
                    )
                case .askHeld:
                    if case .confirming(let attempts) = machine.state, attempts > 1 {
                        try? await Task.sleep(for: .seconds(1))
                    }
                    action = machine.heldAnswered(await self.askHeld(name, on: target))
                case .finish(let outcome):
                    return await self.finishHandoff(
                        name,
                        to: to,
                        outcome: outcome,
                        fencedAt: fencedAt,
                        bytes: sealed?.digests
                    )
                }
            }
        }
    }

    /// Performs a handoff's outcome. Returns true when the namespace moved.
    private func finishHandoff(
        _ name: String,
        to: String,
        outcome: HandoffStateMachine.Outcome,
        fencedAt: ContinuousClock.Instant,
        bytes digests: [NamespaceFiles.Kind: NamespaceFiles.Digest]?
    ) async -> Bool {
        switch outcome {
        case .moved:
            await self.finishHandoff(name, to: to)
            let fenced = ContinuousClock.now - fencedAt
            self.metrics.handoffsOut.increment()
            self.metrics.handoffDuration.record(fenced)
            self.logger.info(
                "ownership changed",
                metadata: [
                    "namespace": "\(name)", "handoff.from": "\(self.selfID)", "handoff.to": "\(to)",
                    "handoff.fenced_ms": "\(fenced.milliseconds)",
                    "handoff.bytes": "\(digests?.values.reduce(0) { $0 + $1.size } ?? 0)",
                ]
            )
            return true
        case .kept:
            try? await self.service.registry.clearHandoff(name)
            self.gate.unfence(name, movedTo: nil)
            self.metrics.handoffsFailed.increment()
            self.logger.warning(
                "handoff refused; keeping the namespace",
                metadata: ["namespace": "\(name)", "handoff.to": "\(to)"]
            )
        case .abandoned(let unfence):
            if unfence { self.gate.unfence(name, movedTo: nil) }
            self.metrics.handoffsFailed.increment()
        case .unresolved:
            // Serving it here could make two writers: refuse it until the target answers.
            self.unresolved.withLock { $0[name] = to }
            self.gate.unfence(name, movedTo: nil)
            self.metrics.handoffsFailed.increment()
            self.logger.error(
                "handoff outcome unknown; the namespace is unavailable until the target answers",
                metadata: ["namespace": "\(name)", "handoff.to": "\(to)"]
            )
        }
        return false
    }

    /// The namespace now lives on `to`: forget it here and send waiting requests there.
    func finishHandoff(_ name: String, to: String) async {
        do {
            try await self.service.registry.remove(name)
            self.files.removeLive(name)
            try await self.service.registry.clearHandoff(name)
        } catch {
            self.logger.error(
                "cannot clean up after a handoff",
                metadata: ["namespace": "\(name)", "error": "\(error)"]
            )
        }
        self.unresolved.withLock { $0[name] = nil }
        self.gate.unfence(name, movedTo: to)
    }

    /// Asks `member` whether it holds `name`: true/false, or nil when it does not answer.
    func askHeld(_ name: String, on member: MemberState) async -> Bool? {
        guard let peers,
            let (_, answer) = try? await peers.call(
                .GET,
                member.metadata.peerAddress,
                "/_peer/v1/namespaces/\(name)/held",
                timeout: .seconds(5),
                answer: HeldAnswer.self
            )
        else { return nil }
        return answer?.held
    }

    /// Settles handoffs whose outcome is unknown (after a crash or a lost answer) by asking their
    /// targets. Called at startup and periodically.
    func settleUnresolvedHandoffs() async {
        if let pending = try? self.service.registry.pendingHandoffs() {
            self.unresolved.withLock { unresolved in
                for (name, target) in pending where unresolved[name] == nil { unresolved[name] = target }
            }
        }
        for (name, target) in self.unresolved.withLock({ $0 }) {
            guard let member = self.view.member(target) else { continue }
            switch await self.askHeld(name, on: member) {
            case true?:
                await self.finishHandoff(name, to: target)
                self.logger.info("handoff confirmed", metadata: ["namespace": "\(name)", "handoff.to": "\(target)"])
            case false?:
                try? await self.service.registry.clearHandoff(name)
                self.unresolved.withLock { $0[name] = nil }
                self.logger.info("handoff did not complete; serving here again", metadata: ["namespace": "\(name)"])
            case nil:
                continue
            }
        }
    }

    // MARK: receiving side

    /// Copies `name`'s files from the member at `from` into staging (appending to what is there).
    func precopy(_ name: String, from: String) async throws(NodeError) -> Int {
        var copied = 0
        for kind in NamespaceFiles.Kind.allCases {
            do {
                copied += try await self.stage(name, kind, from: from, truncate: false)
            } catch  where kind == .history {
                // A holder that predates the change history has none to give; the commit decides.
                continue
            }
        }
        return copied
    }

    /// Appends to the staged copy of `name`'s `kind` file what the member at `from` has beyond it
    /// (emptying the copy first with `truncate`). Returns the bytes copied.
    private func stage(
        _ name: String,
        _ kind: NamespaceFiles.Kind,
        from: String,
        truncate: Bool
    )
        async throws(NodeError) -> Int
    {
        guard let peers else { throw NodeError(.badRequest, "not clustered", status: 400) }
        let handle: FileHandle
        do {
            handle = try self.files.openStaging(name, kind, truncate: truncate)
        } catch {
            throw NodeError.io("cannot stage \(name): \(error)")
        }
        defer { try? handle.close() }
        let offset = NamespaceFiles.size(self.files.stagingPath(name, kind))
        let download = try await peers.download(
            from,
            "/_peer/v1/namespaces/\(name)/files/\(kind.rawValue)?offset=\(offset)",
            into: handle
        )
        if kind == .db { self.recordStagedBase(name, base: download.historyBase, fromStart: offset == 0) }
        self.metrics.handoffBytes.increment(by: Int64(download.written))
        return download.written
    }

    /// Completes a handoff to this node: copies the tail, verifies the digests (copying a file again
    /// whole if its prefix differs), installs the files and registers the namespace.
    func commit(_ name: String, request body: CommitRequest) async throws(NodeError) {
        let record = body.record
        let from = body.from
        guard self.isClustered, record.name == name else { throw .badRequest("commit needs the namespace's record") }
        var expected: [NamespaceFiles.Kind: NamespaceFiles.Digest] = [:]
        for kind in NamespaceFiles.Kind.allCases {
            guard let digest = body.digest(kind) else { continue }
            guard digest.size >= 0, digest.sha256.utf8.count == 64 else {
                throw .badRequest("commit needs a valid \(kind.rawValue) digest")
            }
            expected[kind] = digest
        }
        try await self.locks.withLock(name) { () async throws(NodeError) in
            guard self.service.registry.record(name) == nil else {
                throw NodeError(.exists, "namespace \(name) is already held here", status: 409)
            }
            for (kind, want) in expected.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                var verified = false
                // The tail first; then, for a database file a checkpoint changed, only the pages the
                // change history names; the whole file last.
                for attempt in kind == .db ? [0, 1, 2] : [0, 2] {
                    let path = self.files.stagingPath(name, kind)
                    if attempt == 1 {
                        guard await self.catchUpStagedDatabase(name, from: from) else { continue }
                    } else {
                        let truncate = attempt == 2 || NamespaceFiles.size(path) > want.size
                        if truncate || NamespaceFiles.size(path) < want.size
                            || !FileManager.default.fileExists(atPath: path)
                        {
                            _ = try await self.stage(name, kind, from: from, truncate: truncate)
                        }
                    }
                    let digest = try? await BlockingIO.run { () throws(NodeError) in
                        do { return try NamespaceFiles.digest(path) } catch { throw NodeError.io("\(error)") }
                    }
                    if digest == want {
                        verified = true
                        break
                    }
                }
                guard verified else {
                    self.files.discardStaging(name)
                    throw NodeError(
                        .io,
                        "the copy of \(name)'s \(kind.rawValue) does not match its digest",
                        status: 500
                    )
                }
            }
            do {
                try self.files.install(
                    name,
                    kinds: Set(expected.keys),
                    archives: self.service.archives,
                    now: NamespaceService.nowMilliseconds()
                )
                try await self.service.registry.install(record)
            } catch let error as NodeError {
                throw error
            } catch {
                throw NodeError.io("cannot install \(name): \(error)")
            }
            self.gate.forgetMove(name)
            self.metrics.handoffsIn.increment()
        }
    }

    /// A member that owns `name` (in its view) asks for it. Hands it over when this node holds it and
    /// agrees; otherwise says who it thinks owns it, or that it does not hold it.
    func answerClaim(_ name: String, claimer: String) async -> ClaimAnswer {
        if !self.holds(name) {
            // A handoff of it may be running: let it finish first.
            await self.locks.withLock(name) {}
            if self.unresolved.withLock({ $0[name] }) != nil { return ClaimAnswer(state: .held, owner: nil) }
            return self.holds(name) ? ClaimAnswer(state: .held, owner: self.selfID) : ClaimAnswer(state: .absent)
        }
        let view = ClusterView(
            selfID: self.selfID,
            members: self.membership?.members ?? [],
            treatSelfAsActive: self.phase.withLock { $0 } == .joining
        )
        let owner = view.owner(of: name)
        guard let owner, owner.id.rawValue == claimer else {
            return ClaimAnswer(state: .held, owner: owner?.id.rawValue)
        }
        if await self.handOff(name, to: owner) || self.gate.movedTo(name) == claimer {
            return ClaimAnswer(state: .handedOff)
        }
        return self.holds(name) ? ClaimAnswer(state: .held, owner: self.selfID) : ClaimAnswer(state: .absent)
    }

    var advertisedPeerAddress: String {
        HostPort(
            host: self.configuration.advertisedHost,
            port: self.boundPeerPort ?? self.configuration.peerAddress.port
        ).description
    }

}
