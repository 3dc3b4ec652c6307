import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Membership
import MembershipTransport
import NIOCore
import Proxy
import ServiceLifecycle

/// Starts a node from the environment and runs it until SIGTERM/SIGINT.
public enum NodeMain {
    public static func run(environment: [String: String]) async -> Int32 {
        let configuration: NodeConfiguration
        do {
            configuration = try NodeConfiguration(environment: environment)
        } catch {
            FileHandle.standardError.write(Data("turso-server: invalid configuration: \(error.message)\n".utf8))
            return 2
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "turso.server")
        do {
            try await self.run(configuration: configuration, logger: logger)
            return 0
        } catch let error as NodeError {
            logger.critical("cannot start", metadata: ["error": "\(error.message)", "code": "\(error.code)"])
            return 1
        } catch {
            logger.critical("stopped with an error", metadata: ["error": "\(error)"])
            return 1
        }
    }

    /// The kernel's ephemeral (outgoing) port range, from /proc/sys/net/ipv4/ip_local_port_range.
    static func ephemeralPortRange() -> ClosedRange<Int>? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else {
            return nil
        }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard parts.count == 2, parts[0] <= parts[1] else { return nil }
        return parts[0]...parts[1]
    }

    public static func run(configuration: NodeConfiguration, logger: Logger) async throws {
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
        let service = NamespaceService(
            configuration: configuration,
            registry: registry,
            supervisor: supervisor,
            metrics: metrics,
            logger: logger
        )
        service.removeAbandonedCopies(idleSeconds: 0)
        let lifecycle = NodeLifecycle()
        let (membership, tls) = try Self.makeMembership(configuration, logger: logger)
        let peers = configuration.isClustered ? PeerClient(tls: tls) : nil
        let cluster = Cluster(
            configuration: configuration,
            service: service,
            membership: membership,
            peers: peers,
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
        if let ephemeral = Self.ephemeralPortRange(), ephemeral.overlaps(configuration.backendPorts) {
            logger.warning(
                "backend ports overlap the kernel's ephemeral port range: outgoing connections can take a backend's port (the backend then moves to another port); prefer a range outside it",
                metadata: ["backend.ports": "\(configuration.backendPorts)", "ephemeral.ports": "\(ephemeral)"]
            )
        }
        let client = ReverseProxy.makeClient()
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .nanoseconds(Int64(configuration.idleTimeout * 1e9)),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 16 << 10,
                maxHeaderListSize: 64 << 10,
                maxHeaderFieldCount: 100
            )
        )
        var quietLogger = logger
        quietLogger.logLevel = max(logger.logLevel, .warning)
        let dataResponder = DataResponder(
            service: service,
            cluster: cluster,
            proxy: ReverseProxy(client: client),
            lifecycle: lifecycle,
            logger: logger
        )
        let adminResponder = AdminResponder(service: service, cluster: cluster, lifecycle: lifecycle, logger: logger)
        let dataApp = Application(
            responder: dataResponder,
            server: .http1(configuration: http1),
            configuration: .init(
                address: .hostname(configuration.dataAddress.host, port: configuration.dataAddress.port),
                serverName: nil,
                backlog: 1024
            ),
            onServerRunning: { channel in
                logger.info("data listener ready", metadata: ["data.port": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: quietLogger
        )
        let adminApp = Application(
            responder: adminResponder,
            server: .http1(configuration: http1),
            configuration: .init(
                address: .hostname(configuration.adminAddress.host, port: configuration.adminAddress.port),
                serverName: nil
            ),
            onServerRunning: { channel in
                logger.info("admin listener ready", metadata: ["admin.port": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: quietLogger
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: NodeCoreService(service: service, logger: logger))
        ]
        if configuration.isClustered {
            let peerResponder = PeerResponder(cluster: cluster, data: dataResponder, admin: adminResponder)
            let peerServer: HTTPServerBuilder =
                if let tls { .mutualTLS(http1, material: tls) } else { .http1(configuration: http1) }
            services.append(
                .init(
                    service: Application(
                        responder: peerResponder,
                        server: peerServer,
                        configuration: .init(
                            address: .hostname(configuration.peerAddress.host, port: configuration.peerAddress.port),
                            serverName: nil,
                            backlog: 1024
                        ),
                        onServerRunning: { channel in
                            cluster.peerPort.withLock { $0 = channel.localAddress?.port }
                            logger.info(
                                "peer listener ready",
                                metadata: [
                                    "peer.port": "\(channel.localAddress?.port ?? 0)", "peer.tls": "\(tls != nil)",
                                ]
                            )
                        },
                        logger: quietLogger
                    )
                )
            )
        }
        services += [
            .init(service: dataApp),
            .init(service: adminApp),
            .init(service: ShutdownSignalService(lifecycle: lifecycle, logger: logger)),
        ]
        // Last to start, first to stop: a leaving node hands its namespaces off while the
        // listeners still serve and forward.
        if configuration.isClustered {
            services.append(.init(service: ClusterService(cluster: cluster, logger: logger)))
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: quietLogger
        )
        let leaveTime = configuration.isClustered ? configuration.leaveTimeout : 0
        groupConfiguration.maximumGracefulShutdownDuration = Duration.milliseconds(
            Int64((configuration.shutdownTimeout + leaveTime) * 1000) + 15_000
        )
        let group = ServiceGroup(configuration: groupConfiguration)
        lifecycle.onShutdownRequest { Task { await group.triggerGracefulShutdown() } }
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            await peers?.shutdown()
            throw error
        }
        try? await client.shutdown()
        await peers?.shutdown()
    }

    /// The membership service of a clustered node (nil for a one-node deployment without cluster
    /// settings) and its TLS material.
    static func makeMembership(
        _ configuration: NodeConfiguration,
        logger: Logger
    ) throws(NodeError)
        -> (MembershipService?, TLSMaterial?)
    {
        guard configuration.isClustered else { return (nil, nil) }
        do {
            var tls: TLSMaterial?
            if !configuration.tlsCA.isEmpty {
                tls = try TLSMaterial(
                    caPath: configuration.tlsCA,
                    certificatePath: configuration.tlsCertificate,
                    keyPath: configuration.tlsKey
                )
            } else {
                logger.critical(
                    "TURSO_INSECURE_CLUSTER=true: gossip and peer traffic are NOT encrypted or authenticated; development only"
                )
            }
            let host = Cluster.hostForURL(configuration.advertisedHost)
            var settings = MembershipServiceConfiguration(
                nodeID: NodeID(configuration.nodeID),
                advertisedGossipAddress: "\(host):\(configuration.gossipAddress.port)"
            )
            settings.listenHost = configuration.gossipAddress.host
            settings.listenPort = configuration.gossipAddress.port
            settings.peerAddress = "\(host):\(configuration.peerAddress.port)"
            settings.dataAddress = "\(host):\(configuration.dataAddress.port)"
            settings.zone = configuration.zone
            settings.version = NodeHelp.version
            // The members known before a restart are seeds too: a first member restarting without
            // TURSO_JOIN must find its cluster again rather than believe it is alone.
            let known = KnownMembers(stateDirectory: configuration.stateDirectory).load()
            settings.seeds = configuration.join + known.filter { !configuration.join.contains($0) }
            settings.initialLifecycle = settings.seeds.isEmpty ? .active : .joining
            if !known.isEmpty {
                logger.info(
                    "rejoining the members known before the restart",
                    metadata: ["membership.seeds": "\(known)"]
                )
            }
            settings.membership =
                switch configuration.membershipPreset {
                case "wan": .wan
                case "local-testing": .localTesting
                default: .lan
                }
            settings.tls = tls
            settings.allowInsecure = configuration.insecureCluster
            return (try MembershipService(configuration: settings, logger: logger), tls)
        } catch {
            throw NodeError(.invalidConfiguration, "cannot set up cluster membership: \(error)")
        }
    }
}
