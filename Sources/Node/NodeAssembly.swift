import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MembershipTransport
import NIOCore
import Proxy
import ServiceLifecycle

/// A node built in-process from its configuration: its parts, its listeners as Hummingbird
/// applications, and the service group that runs them. `NodeMain` runs one; tests drive the
/// applications with HummingbirdTesting without starting a process or binding a port.
public struct NodeAssembly: Sendable {
    public let configuration: NodeConfiguration
    public let service: NamespaceService
    public let lifecycle: NodeLifecycle
    let cluster: Cluster
    let logger: Logger
    let client: HTTPClient
    let peers: PeerClient?
    let tls: TLSMaterial?
    let dataRoutes: DataRoutes
    let adminRoutes: AdminRoutes
    let http1: HTTP1Channel.Configuration

    /// Prepares the data directory, loads the registry, reaps backends a previous run left behind and
    /// wires the node's parts. Nothing listens yet.
    public init(configuration: NodeConfiguration, logger: Logger) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: configuration.dataDirectory,
                withIntermediateDirectories: true
            )
            try FileManager.default.createDirectory(
                atPath: configuration.archiveDirectory,
                withIntermediateDirectories: true
            )
        } catch {
            throw NodeError.io("cannot create \(configuration.dataDirectory): \(error.localizedDescription)")
        }
        let registry = try NamespaceRegistry(directory: configuration.stateDirectory)
        for name in PIDFile.reapOrphans(
            stateDirectory: configuration.stateDirectory,
            databasePath: configuration.databasePath
        ) {
            logger.warning("stopped a backend left over from a previous run", metadata: ["namespace": "\(name)"])
        }
        try? FileManager.default.removeItem(atPath: configuration.stateDirectory + "/tmp")
        let metrics = NodeMetrics()
        let supervisor = Supervisor(configuration: configuration, metrics: metrics, logger: logger) { name in
            registry.record(name) != nil
        }
        let identity = try StorageIdentity.load(stateDirectory: configuration.stateDirectory)
        if configuration.isClustered,
            FileManager.default.fileExists(atPath: configuration.stateDirectory + "/directory.db")
        {
            // A clustered run changes the registry without the log: a later one-node start must
            // take the registry as the truth again.
            try DirectoryStore(directory: configuration.stateDirectory).setValue("registry_imported", .integer(0))
        }
        // A one-node cluster decides through its own log here; a clustered node through the cluster
        // log `ClusterLog` opens once the cluster is found (`Cluster.attachOwnership`).
        let directory: DirectoryService? =
            configuration.isClustered
            ? nil
            : DirectoryService(
                log: try DirectoryLog(
                    stateDirectory: configuration.stateDirectory,
                    identity: identity,
                    metrics: metrics,
                    logger: logger
                ),
                registry: registry,
                nodeID: configuration.nodeID,
                zone: configuration.zone,
                logger: logger
            )
        let service = NamespaceService(
            configuration: configuration,
            registry: registry,
            supervisor: supervisor,
            metrics: metrics,
            logger: logger,
            directory: directory
        )
        service.removeUnlabelledStaging()
        let lifecycle = NodeLifecycle()
        let clusterLog =
            configuration.isClustered
            ? try ClusterLog(configuration: configuration, identity: identity, metrics: metrics, logger: logger) : nil
        let (membership, tls) = try NodeMain.makeMembership(
            configuration,
            identity: identity,
            clusterID: clusterLog?.clusterID ?? "",
            logger: logger
        )
        let peers = configuration.isClustered ? PeerClient(tls: tls) : nil
        let cluster = Cluster(
            configuration: configuration,
            service: service,
            membership: membership,
            peers: peers,
            clusterLog: clusterLog,
            logger: logger
        )
        if configuration.authToken.isEmpty {
            logger.warning("TURSO_AUTH_TOKEN is empty: the data port accepts requests without authentication")
        }
        if configuration.adminToken.isEmpty {
            logger.warning("TURSO_ADMIN_TOKEN is empty: the admin port accepts requests without authentication")
        }
        logger.info(
            "turso-server starting",
            metadata: [
                "data.addr": "\(configuration.dataAddress)", "admin.addr": "\(configuration.adminAddress)",
                "data.dir": "\(configuration.dataDirectory)", "backend": "\(supervisor.backendDescription)",
                "namespaces.registered": "\(registry.count)", "max.running": "\(configuration.maxRunning)",
            ]
        )
        if let ephemeral = NodeMain.ephemeralPortRange(), ephemeral.overlaps(configuration.backendPorts) {
            logger.warning(
                "backend ports overlap the kernel's ephemeral port range: outgoing connections can take a backend's port (the backend then moves to another port); prefer a range outside it",
                metadata: ["backend.ports": "\(configuration.backendPorts)", "ephemeral.ports": "\(ephemeral)"]
            )
        }
        let client = ReverseProxy.makeClient()
        self.configuration = configuration
        self.service = service
        self.lifecycle = lifecycle
        self.cluster = cluster
        self.logger = logger
        self.client = client
        self.peers = peers
        self.tls = tls
        self.http1 = HTTP1Channel.Configuration(
            idleTimeout: configuration.idleTimeout.timeAmount,
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 16 << 10,
                maxHeaderListSize: 64 << 10,
                maxHeaderFieldCount: 100
            )
        )
        self.dataRoutes = DataRoutes(
            service: service,
            cluster: cluster,
            proxy: ReverseProxy(client: client),
            lifecycle: lifecycle,
            logger: logger
        )
        self.adminRoutes = AdminRoutes(service: service, cluster: cluster, lifecycle: lifecycle, logger: logger)
    }

    /// Brings the node's state up before anything listens: replays the cluster log into the
    /// directory, registers this node, imports an older build's registry, and finishes archives a
    /// crash interrupted.
    public func start() async throws {
        guard let directory = self.service.directory else { return }
        let interrupted = try await directory.start()
        for name in interrupted {
            self.logger.notice("finishing an archive interrupted by a restart", metadata: ["namespace": "\(name)"])
            do {
                _ = try await self.service.archive(name, reason: "archive interrupted by a restart")
            } catch {
                // One namespace that cannot be archived now must not keep the others down: it stays
                // refused (archiving) and GC tries again.
                self.logger.error(
                    "cannot finish an interrupted archive; GC retries it",
                    metadata: ["namespace": "\(name)", "error": "\(error)"]
                )
            }
        }
    }

    /// Stops what `start` started (after the service group stopped).
    public func stop() {
        self.service.directory?.log.stop()
        self.cluster.clusterLog?.stop()
    }

    /// Hummingbird logs only warnings and worse; the node logs what it does itself.
    private var quietLogger: Logger {
        var logger = self.logger
        logger.logLevel = max(self.logger.logLevel, .warning)
        return logger
    }

    /// A router for one listener: errors become JSON, every answer is counted under `listener` and,
    /// at debug level, logged.
    private func router(_ listener: String) -> Router<NodeRequestContext> {
        let router = Router(context: NodeRequestContext.self)
        router.add(middleware: RequestLogMiddleware(listener: listener, logger: self.logger))
        router.add(middleware: RequestOutcomeMiddleware(listener: listener, metrics: self.service.metrics))
        return router
    }

    /// A listener: `router` served at `address`, logging "<listener> listener ready" with its port
    /// once bound (and telling `onBound`, for a port chosen by the system).
    private func application(
        _ listener: String,
        router: Router<NodeRequestContext>,
        server: HTTPServerBuilder,
        address: NodeConfiguration.ListenAddress,
        backlog: Int = 256,
        metadata: Logger.Metadata = [:],
        onBound: @escaping @Sendable (Int?) -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let logger = self.logger
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(address.host, port: address.port),
                serverName: nil,
                backlog: backlog
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port
                onBound(port)
                logger.info(
                    "\(listener) listener ready",
                    metadata: metadata.merging(["\(listener).port": "\(port ?? 0)"]) { $1 }
                )
            },
            logger: self.quietLogger
        )
    }

    /// The data listener: `/<namespace>/...` proxied to the namespace's backend.
    public var dataApplication: some ApplicationProtocol {
        let router = self.router("data")
        self.dataRoutes.register(on: router)
        return self.application(
            "data",
            router: router,
            server: .http1(configuration: self.http1),
            address: self.configuration.dataAddress,
            backlog: 1024
        )
    }

    /// The admin listener: namespace lifecycle, cluster, `/metrics`, `/healthz`, `/readyz`.
    public var adminApplication: some ApplicationProtocol {
        let router = self.router("admin")
        self.adminRoutes.register(on: router)
        return self.application(
            "admin",
            router: router,
            server: .http1(configuration: self.http1),
            address: self.configuration.adminAddress
        )
    }

    /// The peer listener of a clustered node (mutual TLS unless insecure): forwarded requests and
    /// the cluster's own calls.
    var peerApplication: some ApplicationProtocol {
        let cluster = self.cluster
        let server: HTTPServerBuilder =
            if let tls = self.tls { .mutualTLS(self.http1, material: tls) } else { .http1(configuration: self.http1) }
        let router = self.router("peer")
        PeerRoutes(cluster: cluster, data: self.dataRoutes, admin: self.adminRoutes).register(on: router)
        return self.application(
            "peer",
            router: router,
            server: server,
            address: self.configuration.peerAddress,
            backlog: 1024,
            metadata: ["peer.tls": "\(self.tls != nil)"],
            onBound: { port in cluster.peerPort.withLock { $0 = port } }
        )
    }

    /// Everything that runs the node, in start order (stopped in reverse): background work, the
    /// listeners, the shutdown switch, and last the cluster, so a leaving node hands its namespaces
    /// off while the listeners still serve and forward. With `handlingSignals`, SIGTERM and SIGINT
    /// shut it down gracefully (a process); without, only `lifecycle.requestShutdown()` does (tests).
    public func serviceGroup(handlingSignals: Bool) -> ServiceGroup {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: NodeCoreService(
                    service: self.service,
                    checkpoints: CheckpointScheduler(
                        service: self.service,
                        client: self.client,
                        shipper: self.cluster.shipper,
                        logger: self.logger
                    ),
                    logger: self.logger
                )
            )
        ]
        if self.configuration.isClustered { services.append(.init(service: self.peerApplication)) }
        services += [
            .init(service: self.dataApplication),
            .init(service: self.adminApplication),
            .init(service: ShutdownSignalService(lifecycle: self.lifecycle, logger: self.logger)),
        ]
        if self.configuration.isClustered {
            services.append(.init(service: ClusterService(cluster: self.cluster, logger: self.logger)))
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: handlingSignals ? [.sigterm, .sigint] : [],
            logger: self.quietLogger
        )
        let leaveTime = self.configuration.isClustered ? self.configuration.leaveTimeout : .zero
        groupConfiguration.maximumGracefulShutdownDuration =
            self.configuration.shutdownTimeout + leaveTime + .seconds(15)
        let group = ServiceGroup(configuration: groupConfiguration)
        self.lifecycle.onShutdownRequest { Task { await group.triggerGracefulShutdown() } }
        return group
    }

    /// Closes the node's outgoing HTTP clients (after the group stopped, or when it was never run).
    public func shutdownClients() async {
        try? await self.client.shutdown()
        await self.peers?.shutdown()
    }
}
