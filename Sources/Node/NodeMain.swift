import Directory
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Membership
import MembershipTransport
import NIOCore
import Proxy
import ServerSupport
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
        let node = try NodeAssembly(configuration: configuration, logger: logger)
        defer { node.stop() }
        do {
            try await node.start()
        } catch {
            await node.shutdownClients()
            throw error
        }
        let group = node.serviceGroup(handlingSignals: true)
        do {
            try await group.run()
        } catch {
            await node.shutdownClients()
            throw error
        }
        await node.shutdownClients()
    }

    /// The membership service of a clustered node (nil for a one-node deployment without cluster
    /// settings) and its TLS material.
    static func makeMembership(
        _ configuration: NodeConfiguration,
        identity: StorageIdentity,
        clusterID: String,
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
            let host = HostPort.bracketed(configuration.advertisedHost)
            var settings = MembershipServiceConfiguration(
                nodeID: NodeID(configuration.nodeID),
                advertisedGossipAddress: "\(host):\(configuration.gossipAddress.port)"
            )
            settings.listenHost = configuration.gossipAddress.host
            settings.listenPort = configuration.gossipAddress.port
            settings.peerAddress = "\(host):\(configuration.peerAddress.port)"
            settings.dataAddress = "\(host):\(configuration.dataAddress.port)"
            settings.zone = configuration.zone
            // A witness announces weight 0: placement never gives it a namespace.
            settings.weight = configuration.isWitness ? 0 : 1
            // The directory format this build applies rides along (see `DirectoryFormat`).
            settings.version = DirectoryFormat.announcing(NodeHelp.version)
            settings.storageID = identity.storageID
            settings.clusterID = clusterID
            // No seed cache: a first member restarting without TURSO_JOIN is found again by the
            // others, which keep retrying departed members' addresses (and its cluster log, not
            // gossip, says what it owns).
            settings.seeds = configuration.join
            settings.initialLifecycle = settings.seeds.isEmpty ? .active : .joining
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
