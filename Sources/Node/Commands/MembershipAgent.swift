import ArgumentParser
import Foundation
import Logging
import Membership
import MembershipTransport

/// `turso-server membership-agent`: runs only the membership layer (no data or admin listeners) and
/// prints one JSON object per member change and, every second, this node's view. Used by the
/// multi-process membership tests and for debugging a cluster's gossip.
///
/// Environment: `TURSO_NODE_ID`, `TURSO_GOSSIP_ADDR` (listen, default `:7946`), `TURSO_ADVERTISE_HOST`,
/// `TURSO_JOIN`, `TURSO_TLS_CA`, `TURSO_TLS_CERT`, `TURSO_TLS_KEY`, `TURSO_INSECURE_CLUSTER`,
/// `TURSO_MEMBERSHIP_PRESET` (`lan`, `wan`, `local-testing`).
public struct MembershipAgentCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "membership-agent",
        abstract: "Run only the membership layer and print member changes as JSON lines.",
        discussion: """
            Environment: TURSO_NODE_ID, TURSO_GOSSIP_ADDR, TURSO_ADVERTISE_HOST, TURSO_JOIN, TURSO_TLS_CA, \
            TURSO_TLS_CERT, TURSO_TLS_KEY, TURSO_INSECURE_CLUSTER, TURSO_MEMBERSHIP_PRESET.
            """
    )

    public init() {}

    public func run() async throws {
        let status = await MembershipAgent.run(environment: ProcessInfo.processInfo.environment)
        if status != 0 { throw ExitCode(status) }
    }
}

/// The agent itself, configured from the environment.
public enum MembershipAgent {
    public static func run(environment env: [String: String]) async -> Int32 {
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "turso.membership")
        let configuration: MembershipServiceConfiguration
        do {
            configuration = try Self.configuration(env)
        } catch {
            logger.critical("invalid membership configuration", metadata: ["error": "\(error)"])
            return 2
        }
        let service: MembershipService
        do {
            service = try MembershipService(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start membership", metadata: ["error": "\(error)"])
            return 1
        }
        let stop = AsyncStream<Void>.makeStream()
        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.continuation.yield() }
            source.resume()
            return source
        }
        defer { withExtendedLifetime(signals) {} }
        return await withTaskGroup(of: Int32.self) { group in
            group.addTask {
                do {
                    try await service.run { event in
                        switch event {
                        case .memberChanged(let state, let previous):
                            Self.emit([
                                "event": "member", "id": state.id.rawValue, "status": "\(state.status)",
                                "previous": previous.map { "\($0)" } ?? "none", "incarnation": "\(state.incarnation)",
                            ])
                        case .conflictingIdentity(let state):
                            Self.emit([
                                "event": "conflict", "id": state.id.rawValue, "address": state.metadata.gossipAddress,
                            ])
                        }
                    }
                    return 0
                } catch is CancellationError {
                    return 0
                } catch {
                    logger.critical("membership stopped", metadata: ["error": "\(error)"])
                    return 1
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    let view = service.members.map { "\($0.id.rawValue)=\($0.status)" }.joined(separator: ",")
                    Self.emit(["event": "view", "members": view])
                }
                return 0
            }
            group.addTask {
                for await _ in stop.stream { break }
                await service.leave()
                return 0
            }
            let first = await group.next() ?? 0
            group.cancelAll()
            return first
        }
    }

    static func emit(_ object: [String: String]) {
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        data.append(0x0a)
        FileHandle.standardOutput.write(data)
    }

    static func configuration(_ env: [String: String]) throws -> MembershipServiceConfiguration {
        func value(_ key: String) -> String? { env[key].flatMap { $0.isEmpty ? nil : $0 } }
        let id = value("TURSO_NODE_ID") ?? ProcessInfo.processInfo.hostName
        let listen = NodeConfiguration.parseAddress(value("TURSO_GOSSIP_ADDR") ?? ":7946")
        guard let listen else { throw NodeError.invalidConfiguration("TURSO_GOSSIP_ADDR is not host:port") }
        let advertiseHost = value("TURSO_ADVERTISE_HOST") ?? (listen.host == "0.0.0.0" ? "127.0.0.1" : listen.host)
        var configuration = MembershipServiceConfiguration(
            nodeID: NodeID(id),
            advertisedGossipAddress: "\(advertiseHost):\(listen.port)"
        )
        configuration.listenHost = listen.host
        configuration.listenPort = listen.port
        configuration.seeds = (value("TURSO_JOIN") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        switch value("TURSO_MEMBERSHIP_PRESET") ?? "lan" {
        case "lan": configuration.membership = .lan
        case "wan": configuration.membership = .wan
        case "local-testing": configuration.membership = .localTesting
        case let other: throw NodeError.invalidConfiguration("unknown TURSO_MEMBERSHIP_PRESET \(other)")
        }
        if let reload = value("TURSO_TLS_RELOAD_INTERVAL"), let seconds = GoDuration.parse(reload) {
            configuration.tlsReloadInterval = .seconds(seconds)
        }
        configuration.allowInsecure = value("TURSO_INSECURE_CLUSTER") == "true"
        if let ca = value("TURSO_TLS_CA"), let cert = value("TURSO_TLS_CERT"), let key = value("TURSO_TLS_KEY") {
            configuration.tls = try TLSMaterial(caPath: ca, certificatePath: cert, keyPath: key)
        }
        return configuration
    }
}
