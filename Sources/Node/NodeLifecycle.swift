import Foundation
import Synchronization

/// Whether the node takes new requests (false once shutdown began, so `/readyz` fails and load
/// balancers move away while in-flight requests drain).
public final class NodeLifecycle: Sendable {
    private let accepting = Atomic<Bool>(true)
    /// Start time in milliseconds since the epoch (the incarnation a one-node cluster reports).
    public let startedAt = Int64(Date().timeIntervalSince1970 * 1000)

    public init() {}

    public var isAccepting: Bool { self.accepting.load(ordering: .relaxed) }

    public func stopAccepting() { self.accepting.store(false, ordering: .relaxed) }

    private let shutdownHandler = Mutex<(@Sendable () -> Void)?>(nil)

    /// Sets what `requestShutdown` does (trigger the service group's graceful shutdown).
    public func onShutdownRequest(_ handler: @escaping @Sendable () -> Void) {
        self.shutdownHandler.withLock { $0 = handler }
    }

    /// Starts a graceful shutdown as SIGTERM would (`POST /v1/cluster/leave`).
    public func requestShutdown() { self.shutdownHandler.withLock { $0 }?() }
}
