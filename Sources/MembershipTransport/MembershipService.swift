import Foundation
import Logging
import Membership
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The shell around `MembershipStateMachine`: a TLS gossip listener, outbound peer connections, a
/// ticker, and one loop that feeds inputs to the state machine and performs its actions in order.
public final class MembershipService: Sendable {
    public enum Event: Sendable {
        case memberChanged(MemberState, previous: MemberStatus?)
        case conflictingIdentity(MemberState)
    }

    fileprivate enum Input: Sendable {
        case envelope(MembershipEnvelope)
        case tick
        case leave(CheckedContinuation<Void, Never>)
        case metadata(@Sendable (inout MemberMetadata) -> Void, CheckedContinuation<Void, Never>)
        case seeds([String])
        case forget(NodeID, CheckedContinuation<Bool, Never>)
    }

    public let configuration: MembershipServiceConfiguration
    private let logger: Logger
    private let connections: PeerConnections
    private let inbox: AsyncStream<Input>
    private let inboxContinuation: AsyncStream<Input>.Continuation
    private let snapshot = Mutex<(members: [MemberState], synced: Bool, hasSeeds: Bool)>(([], false, false))
    private let boundPort = Mutex<Int?>(nil)

    public init(configuration: MembershipServiceConfiguration, logger: Logger) throws(MembershipTransportError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.connections = PeerConnections(tls: configuration.tls, logger: logger)
        (self.inbox, self.inboxContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
    }

    /// Every member this node knows, itself included (updated after every change, at least once a second).
    public var members: [MemberState] { self.snapshot.withLock { $0.members } }

    /// True once a full state exchange with another member completed (always false for a node that
    /// has no seeds and was never contacted).
    public var isSynced: Bool { self.snapshot.withLock { $0.synced } }

    /// True when seed addresses other than this node's own are known (resolved).
    public var hasSeedsOtherThanSelf: Bool { self.snapshot.withLock { $0.hasSeeds } }

    /// Announces a dead member as gone for good (`left`). Returns false unless it is known and dead.
    public func forget(_ id: NodeID) async -> Bool {
        await withCheckedContinuation { continuation in
            self.inboxContinuation.yield(.forget(id, continuation))
        }
    }

    /// Announces a new lifecycle (joining → active, active → leaving) with a higher incarnation.
    public func setLifecycle(_ lifecycle: MemberLifecycle) async {
        await withCheckedContinuation { continuation in
            self.inboxContinuation.yield(.metadata({ $0.lifecycle = lifecycle }, continuation))
        }
    }

    /// Announces the cluster log this node belongs to (after it bootstrapped or joined one).
    public func setClusterID(_ clusterID: String) async {
        await withCheckedContinuation { continuation in
            self.inboxContinuation.yield(.metadata({ $0.clusterID = clusterID }, continuation))
        }
    }

    /// The gossip port actually bound (useful with port 0).
    public var port: Int? { self.boundPort.withLock { $0 } }

    /// Announces a graceful leave and gives it a moment to spread. Call before cancelling `run`.
    public func leave() async {
        await withCheckedContinuation { continuation in
            self.inboxContinuation.yield(.leave(continuation))
        }
        try? await Task.sleep(for: self.configuration.membership.gossipInterval * 3)
    }

    /// Listens and runs the failure detector until the task is cancelled. `onEvent` sees every member
    /// change, in order.
    public func run(onEvent: @escaping @Sendable (Event) -> Void = { _ in }) async throws {
        let tls = self.configuration.tls
        let logger = self.logger
        let inbox = self.inboxContinuation
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLServerHandler(context: tls.contexts.server)
                            )
                        }
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(
                            InboundEnvelopeHandler(requireIdentity: tls != nil, logger: logger) { envelope in
                                inbox.yield(.envelope(envelope))
                            }
                        )
                    }
                }
                .bind(host: self.configuration.listenHost, port: self.configuration.listenPort).get()
        } catch {
            throw MembershipTransportError.bind(
                "cannot listen on \(self.configuration.listenHost):\(self.configuration.listenPort): \(error)"
            )
        }
        self.boundPort.withLock { $0 = server.localAddress?.port }
        let origin = ContinuousClock.now
        let initialMachine = MembershipStateMachine(
            metadata: MemberMetadata(
                id: self.configuration.nodeID,
                gossipAddress: self.configuration.advertisedGossipAddress,
                peerAddress: self.configuration.peerAddress,
                dataAddress: self.configuration.dataAddress,
                zone: self.configuration.zone,
                weight: self.configuration.weight,
                version: self.configuration.version,
                lifecycle: self.configuration.initialLifecycle,
                instance: UInt64.random(in: 1...UInt64.max),
                storageID: self.configuration.storageID,
                clusterID: self.configuration.clusterID
            ),
            // Wall-clock milliseconds: a restarted process starts above every incarnation of its
            // previous life.
            incarnation: Incarnation(UInt64(Date().timeIntervalSince1970 * 1000)),
            seeds: SeedResolver.literalSeeds(self.configuration.seeds),
            configuration: self.configuration.membership,
            randomSeed: UInt64.random(in: 0...UInt64.max),
            now: .zero
        )
        self.logger.info(
            "membership listening",
            metadata: [
                "membership.node": "\(self.configuration.nodeID)",
                "membership.address": "\(self.configuration.advertisedGossipAddress)",
                "membership.seeds": "\(self.configuration.seeds)",
                "membership.tls": "\(tls != nil)",
            ]
        )
        let interval = self.configuration.tickInterval
        let reloadInterval = self.configuration.tlsReloadInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: interval)
                    inbox.yield(.tick)
                }
            }
            if let tls {
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: reloadInterval)
                        do {
                            if try tls.reloadIfChanged() { logger.info("reloaded TLS certificates") }
                        } catch {
                            logger.error(
                                "cannot reload TLS certificates; keeping the previous ones",
                                metadata: ["membership.error": "\(error)"]
                            )
                        }
                    }
                }
            }
            if SeedResolver.needsResolution(self.configuration.seeds) {
                let seeds = self.configuration.seeds
                group.addTask {
                    var previous: [String] = []
                    while !Task.isCancelled {
                        let resolved = await SeedResolver.resolve(seeds)
                        if resolved != previous {
                            previous = resolved
                            logger.info("seeds resolved", metadata: ["membership.seeds": "\(resolved)"])
                            inbox.yield(.seeds(resolved))
                        }
                        // DNS names (a headless Service) gain addresses as pods start: re-resolve
                        // often until joined, then now and then (to find the cluster again if alone).
                        try await Task.sleep(for: self.isSynced ? .seconds(30) : .seconds(2))
                    }
                }
            }
            group.addTask {
                var machine = initialMachine
                // The member list is copied and sorted when something changed, and otherwise once a
                // second (refutations change this node's own incarnation without an action).
                let ticksPerSnapshot = max(1, Int(Duration.seconds(1) / interval))
                var ticksSinceSnapshot = 0
                for await input in self.inbox {
                    let now = Instant(ContinuousClock.now - origin)
                    let actions: [MembershipStateMachine.Action]
                    // Callers are answered once the snapshot shows their change: a node that set
                    // itself active must see itself active in `members` from then on.
                    var answer: (() -> Void)?
                    switch input {
                    case .envelope(let envelope): actions = machine.receive(envelope, now: now)
                    case .tick: actions = machine.tick(now: now)
                    case .leave(let continuation):
                        actions = machine.leave(now: now)
                        answer = { continuation.resume() }
                    case .metadata(let change, let continuation):
                        actions = machine.updateMetadata(change, now: now)
                        ticksSinceSnapshot = ticksPerSnapshot
                        answer = { continuation.resume() }
                    case .forget(let id, let continuation):
                        let result = machine.forget(id, now: now)
                        actions = result ?? []
                        answer = { continuation.resume(returning: result != nil) }
                    case .seeds(let seeds):
                        machine.replaceSeeds(seeds)
                        actions = []
                        ticksSinceSnapshot = ticksPerSnapshot
                    }
                    defer { answer?() }
                    if input.isTick { ticksSinceSnapshot += 1 }
                    // The snapshot first: whoever an event wakes must already see the change.
                    if !actions.isEmpty || ticksSinceSnapshot >= ticksPerSnapshot {
                        ticksSinceSnapshot = 0
                        let (synced, hasSeeds) = (machine.synced, machine.hasSeeds)
                        self.snapshot.withLock { $0 = (machine.members, synced, hasSeeds) }
                    }
                    self.perform(actions, onEvent: onEvent)
                    if Task.isCancelled { break }
                }
            }
            defer {
                server.close(promise: nil)
                self.connections.closeAll()
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func perform(_ actions: [MembershipStateMachine.Action], onEvent: @Sendable (Event) -> Void) {
        for action in actions {
            switch action {
            case .send(let envelope, let destination):
                self.connections.send(envelope, to: destination.address)
            case .memberChanged(let state, let previous):
                if previous != state.status {
                    self.logger.info(
                        "member status changed",
                        metadata: [
                            "membership.peer": "\(state.id)", "membership.status": "\(state.status)",
                            "membership.incarnation": "\(state.incarnation)",
                        ]
                    )
                }
                onEvent(.memberChanged(state, previous: previous))
            case .conflictingIdentity(let state):
                self.logger.error(
                    "another live process claims this node's id",
                    metadata: [
                        "membership.peer": "\(state.id)", "membership.address": "\(state.metadata.gossipAddress)",
                    ]
                )
                onEvent(.conflictingIdentity(state))
            }
        }
    }
}

extension MembershipService.Input {
    fileprivate var isTick: Bool { if case .tick = self { true } else { false } }
}
