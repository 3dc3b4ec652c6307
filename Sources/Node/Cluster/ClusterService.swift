import Logging
import ServiceLifecycle

/// Runs the node's cluster membership. On graceful shutdown (SIGTERM or `POST /v1/cluster/leave`) it
/// hands every namespace off before the listeners stop, then announces its departure.
struct ClusterService: Service {
    let cluster: Cluster
    let logger: Logger

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.cluster.run() }
            group.addTask {
                // Cancellation (the group stopping for another reason) is not a leave.
                if (try? await gracefulShutdown()) != nil { await self.cluster.leave() }
            }
            // Either membership failed (an error to report) or the leave finished.
            do {
                try await group.next()
            } catch is CancellationError {
            }
            group.cancelAll()
        }
    }
}
