import Synchronization

/// An async mutex per key: serialises the handoff, install and creation of one namespace without
/// holding up the others.
final class KeyedLock: Sendable {
    private let state = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func withLock<T, E: Error>(_ key: String, _ body: () async throws(E) -> T) async throws(E) -> T {
        await self.lock(key)
        defer { self.unlock(key) }
        return try await body()
    }

    /// Holds the locks of all `keys` (taken in sorted order, so two callers never wait on each
    /// other crosswise) while `body` runs.
    func withLocks<T, E: Error>(_ keys: Set<String>, _ body: () async throws(E) -> T) async throws(E) -> T {
        let sorted = keys.sorted()
        for key in sorted { await self.lock(key) }
        defer { for key in sorted { self.unlock(key) } }
        return try await body()
    }

    private func lock(_ key: String) async {
        await withCheckedContinuation { continuation in
            let acquired = self.state.withLock { state -> Bool in
                if state[key] == nil {
                    state[key] = []
                    return true
                }
                state[key]!.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    private func unlock(_ key: String) {
        let next = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var waiters = state[key], !waiters.isEmpty else {
                state[key] = nil
                return nil
            }
            let next = waiters.removeFirst()
            state[key] = waiters
            return next
        }
        next?.resume()
    }
}
