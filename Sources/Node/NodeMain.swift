import Foundation
import Hummingbird
import HummingbirdCore
import Logging
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
        let supervisor = Supervisor(configuration: configuration, metrics: metrics, logger: logger)
        let service = NamespaceService(
            configuration: configuration,
            registry: registry,
            supervisor: supervisor,
            metrics: metrics,
            logger: logger
        )
        let lifecycle = NodeLifecycle()
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
            idleTimeout: .seconds(Int64(configuration.idleTimeout)),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 16 << 10,
                maxHeaderListSize: 64 << 10,
                maxHeaderFieldCount: 100
            )
        )
        var quietLogger = logger
        quietLogger.logLevel = max(logger.logLevel, .warning)
        let dataApp = Application(
            responder: DataResponder(
                service: service,
                proxy: ReverseProxy(client: client),
                lifecycle: lifecycle,
                logger: logger
            ),
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
            responder: AdminResponder(service: service, lifecycle: lifecycle, logger: logger),
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
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: NodeCoreService(service: service, logger: logger)),
                .init(service: dataApp),
                .init(service: adminApp),
                .init(service: ShutdownSignalService(lifecycle: lifecycle, logger: logger)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: quietLogger
        )
        groupConfiguration.maximumGracefulShutdownDuration = Duration.milliseconds(
            Int64(configuration.shutdownTimeout * 1000) + 15_000
        )
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
    }
}
