import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle

/// Background work of a node: the GC sweep, the debounced flush of access times, WAL checkpoints;
/// on shutdown it stops every backend and flushes the registry.
struct NodeCoreService: Service {
    let service: NamespaceService
    let checkpoints: CheckpointScheduler
    let logger: Logger

    func run() async throws {
        let configuration = self.service.configuration
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: configuration.gcInterval)
                    if Task.isCancelled { break }
                    await self.service.collectGarbage()
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: configuration.accessFlushInterval)
                    // The last flush runs after the backends stopped, below.
                    if Task.isCancelled { break }
                    do {
                        try await self.service.registry.flushAccessTimes()
                    } catch {
                        self.logger.error("cannot persist access times", metadata: ["error": "\(error)"])
                    }
                }
            }
            group.addTask { await self.checkpoints.run() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        self.logger.info("stopping backends")
        await self.service.supervisor.stopAll(timeout: .seconds(10))
        self.flush()
        self.logger.info("node stopped")
    }

    private func flush() {
        do {
            try self.service.registry.flushAccessTimesNow()
        } catch {
            self.logger.error("cannot persist access times", metadata: ["error": "\(error)"])
        }
    }
}

/// Shut down first: flips the node to "not accepting" so `/readyz` fails and new data requests get
/// 503 while the listeners drain.
struct ShutdownSignalService: Service {
    let lifecycle: NodeLifecycle
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        self.lifecycle.stopAccepting()
        self.logger.info("shutdown requested: draining in-flight requests")
    }
}
