import NIOPosix

/// Where the node does blocking file-system work (SQLite fsyncs, whole-file hashes, file copies):
/// NIO's thread pool, so a slow disk stalls those threads and never Swift concurrency's shared ones,
/// which serve every request.
enum BlockingIO {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws(NodeError) -> T) async throws(NodeError) -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive { () throws -> T in try body() }
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError(.shuttingDown, "the node is shutting down: \(error)", status: 503)
        }
    }
}
