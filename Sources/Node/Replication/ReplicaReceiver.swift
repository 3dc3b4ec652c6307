import Logging
import Replication

/// The follower side of WAL shipping. Each shipment's sender is checked against the directory as
/// this node applied it (`FollowerRules`: the owner at that epoch, this node one of its followers;
/// a shipment from a directory index not applied yet waits for it, briefly), then `ReplicaCopies`
/// applies it durably. One shipment at a time per namespace.
final class ReplicaReceiver: Sendable {
    let copies: ReplicaCopies
    let nodeID: String
    let logger: Logger
    private let log: @Sendable () -> DirectoryLog?
    private let locks = KeyedLock()

    init(copies: ReplicaCopies, nodeID: String, logger: Logger, log: @escaping @Sendable () -> DirectoryLog?) {
        self.copies = copies
        // Before any shipment: what a crash left of an install or a removal.
        copies.removeLeftovers()
        self.nodeID = nodeID
        self.logger = logger
        self.log = log
    }

    typealias Answer = (status: Int, answer: ShipmentMessages.CopyAnswer)

    /// The copy of `name` as it is, with its history base.
    func copy(_ name: String) async -> Answer {
        await self.locks.withLock(name) { () async -> Answer in
            var answer = await self.answer(name) { () throws(NodeError) in try self.copies.copy(name) }
            if answer.status == 200 {
                answer.answer.since = try? await BlockingIO.run { self.copies.historyBase(name)?.description }
            }
            return answer
        }
    }

    func append(
        _ name: String,
        from sender: FollowerRules.Sender,
        to expected: ShipmentPlan.Copy,
        bytes: [UInt8]
    ) async -> Answer {
        await self.admitted(name, sender, expected) { () throws(NodeError) in
            let position = try self.copies.append(name, bytes, after: expected.position)
            return try ShipmentPlan.Copy(position: position, base: self.copies.copy(name).base)
        }
    }

    func retire(
        _ name: String,
        from sender: FollowerRules.Sender,
        to expected: ShipmentPlan.Copy,
        history: [UInt8]
    )
        async -> Answer
    {
        await self.admitted(name, sender, expected) { () throws(NodeError) in
            try self.copies.retire(name, end: expected.position, history: history)
        }
    }

    func install(
        _ name: String,
        from sender: FollowerRules.Sender,
        to expected: ShipmentPlan.Copy,
        bytes: [UInt8],
        sizes: (database: Int, wal: Int, history: Int),
        delta: Bool
    ) async -> Answer {
        await self.admitted(name, sender, expected) { () throws(NodeError) in
            guard sizes.database >= 0, sizes.wal >= 0, sizes.history >= 0,
                sizes.database <= bytes.count, sizes.wal <= bytes.count - sizes.database,
                sizes.history == bytes.count - sizes.database - sizes.wal
            else { throw NodeError.badRequest("the install sizes do not add up to the body") }
            let walEnd = sizes.database + sizes.wal
            let copy =
                delta
                ? try self.copies.installDelta(
                    name,
                    delta: bytes[0..<sizes.database],
                    wal: bytes[sizes.database..<walEnd],
                    history: bytes[walEnd...]
                )
                : try self.copies.install(
                    name,
                    database: bytes[0..<sizes.database],
                    wal: bytes[sizes.database..<walEnd],
                    history: bytes[walEnd...]
                )
            self.logger.info(
                "follower copy installed",
                metadata: [
                    "namespace": "\(name)", "replication.owner": "\(sender.node)",
                    "replication.epoch": "\(sender.epoch)", "replication.bytes": "\(bytes.count)",
                    "replication.delta": "\(delta)",
                ]
            )
            return copy
        }
    }

    /// Drops the copies of namespaces this node no longer follows (deleted, moved, reassigned).
    func sweep() async {
        guard let log = self.log() else { return }
        for name in self.copies.names() {
            let entry = log.entry(name)
            if let entry, entry.followers.contains(self.nodeID) { continue }
            await self.locks.withLock(name) {
                guard let entry = log.entry(name), entry.followers.contains(self.nodeID) else {
                    self.copies.remove(name)
                    self.logger.info("follower copy dropped", metadata: ["namespace": "\(name)"])
                    return
                }
            }
        }
    }

    /// Runs `step` once the sender is admitted and the copy is still the one the owner decided
    /// from (`expected`: a shipment whose call the owner gave up on may arrive after later ones),
    /// under the namespace's lock; a refusal answers the copy as it is with the reason.
    private func admitted(
        _ name: String,
        _ sender: FollowerRules.Sender,
        _ expected: ShipmentPlan.Copy,
        _ step: @escaping @Sendable () throws(NodeError) -> ShipmentPlan.Copy
    ) async -> Answer {
        guard let log = self.log() else {
            return (503, ShipmentMessages.CopyAnswer(.init(position: .empty, base: nil), error: "no cluster log"))
        }
        if log.observedIndex < sender.directoryIndex { _ = await log.awaitObserved(sender.directoryIndex) }
        return await self.locks.withLock(name) { () async -> Answer in
            let verdict = FollowerRules.admit(
                sender,
                selfID: self.nodeID,
                appliedIndex: log.observedIndex,
                entry: log.entry(name)
            )
            switch verdict {
            case .accept:
                return await self.answer(name) { () throws(NodeError) -> ShipmentPlan.Copy in
                    let current = try self.copies.copy(name)
                    guard current == expected else {
                        throw NodeError(
                            .replicaConflict,
                            "the copy is at \(current.position) (base \(current.base ?? "-")), the shipment is for \(expected.position) (base \(expected.base ?? "-"))",
                            status: 409
                        )
                    }
                    return try step()
                }
            case .waitForDirectory:
                let current = (try? self.copies.copy(name)) ?? .init(position: .empty, base: nil)
                return (
                    503, ShipmentMessages.CopyAnswer(current, error: "this follower has not applied the directory yet")
                )
            case .refuse(let error):
                let current = (try? self.copies.copy(name)) ?? .init(position: .empty, base: nil)
                return (421, ShipmentMessages.CopyAnswer(current, error: error.description))
            }
        }
    }

    private func answer(
        _ name: String,
        _ step: @escaping @Sendable () throws(NodeError) -> ShipmentPlan.Copy
    ) async
        -> Answer
    {
        do {
            let copy = try await BlockingIO.run(step)
            return (200, ShipmentMessages.CopyAnswer(copy))
        } catch {
            let current = (try? self.copies.copy(name)) ?? .init(position: .empty, base: nil)
            return (Int(error.status.code), ShipmentMessages.CopyAnswer(current, error: error.message))
        }
    }
}
