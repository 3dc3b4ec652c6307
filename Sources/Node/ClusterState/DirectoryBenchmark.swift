import Foundation
import Logging

/// Figures for the one-node cluster log, printed by `swift run -c release directory-bench`: creates
/// per second through the log (latency percentiles), the restart time and the on-disk size of the
/// log and directory at a given number of namespaces. Runs on real SQLite files in a temporary
/// directory, with the node's own types.
public enum DirectoryBenchmark {
    public struct Report: Sendable, CustomStringConvertible {
        public var namespaces: Int
        public var concurrency: Int
        public var createsPerSecond: Double
        public var p50: Duration
        public var p99: Duration
        public var restart: Duration
        public var logBytes: Int
        public var directoryBytes: Int

        public var description: String {
            func ms(_ d: Duration) -> String { String(format: "%.2f ms", d.seconds * 1000) }
            return """
                namespaces created     \(self.namespaces) (concurrency \(self.concurrency))
                creates per second     \(Int(self.createsPerSecond))
                create latency         p50 \(ms(self.p50)), p99 \(ms(self.p99))
                restart (replay+mirror) \(ms(self.restart))
                raft.db                \(self.logBytes / 1024) KiB
                directory.db           \(self.directoryBytes / 1024) KiB
                """
        }
    }

    /// With `dataDirectory`, the state is left in its `_state/` (for a node to be started on it).
    public static func run(namespaces: Int, concurrency: Int, dataDirectory: String? = nil) async throws -> Report {
        let directory =
            dataDirectory.map { $0 + "/_state" }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("dirbench-\(UUID().uuidString)").path
        defer { if dataDirectory == nil { try? FileManager.default.removeItem(atPath: directory) } }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        func open() throws -> DirectoryService {
            let log = try DirectoryLog(
                stateDirectory: directory,
                identity: try StorageIdentity.load(stateDirectory: directory),
                metrics: NodeMetrics(),
                logger: logger
            )
            return DirectoryService(
                log: log,
                registry: try NamespaceRegistry(directory: directory),
                nodeID: ProcessInfo.processInfo.environment["TURSO_NODE_ID"] ?? ProcessInfo.processInfo.hostName,
                zone: "",
                logger: logger
            )
        }
        let service = try open()
        _ = try await service.start()
        let clock = ContinuousClock()
        let started = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var latencies: [Duration] = []
                    var index = worker
                    while index < namespaces {
                        let begin = clock.now
                        _ = try await service.create("ns-\(index)", origin: .auto, now: 1, maxNamespaces: 0)
                        latencies.append(clock.now - begin)
                        index += concurrency
                    }
                    return latencies
                }
            }
            var all: [Duration] = []
            for try await part in group { all += part }
            return all.sorted()
        }
        let elapsed = clock.now - started
        service.log.stop()
        let reopenStarted = clock.now
        let reopened = try open()
        _ = try await reopened.start()
        let restart = clock.now - reopenStarted
        reopened.log.stop()
        func size(_ name: String) -> Int {
            ["", "-wal"].reduce(0) { total, suffix in
                let attributes = try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)\(suffix)")
                return total + ((attributes?[.size] as? Int) ?? 0)
            }
        }
        return Report(
            namespaces: namespaces,
            concurrency: concurrency,
            createsPerSecond: Double(namespaces) / elapsed.seconds,
            p50: latencies[latencies.count / 2],
            p99: latencies[min(latencies.count - 1, latencies.count * 99 / 100)],
            restart: restart,
            logBytes: size("raft.db"),
            directoryBytes: size("directory.db")
        )
    }
}
