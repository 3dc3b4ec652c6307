import Synchronization

/// Directory changes for an `OwnershipService` that is still being built: it reads the directory
/// while the log may apply more, so the names changed meanwhile are kept and applied once it is
/// attached (applying a name again is harmless: the machine settles on the current entry).
final class DeferredObserver: Sendable {
    private struct State {
        var ownership: OwnershipService?
        var missed: Set<String> = []
    }

    private let state = Mutex(State())

    /// The log's observer: forwards to the service once attached, keeps the names until then.
    func changed(_ names: Set<String>) async {
        let ownership = self.state.withLock { state -> OwnershipService? in
            guard let ownership = state.ownership else {
                state.missed.formUnion(names)
                return nil
            }
            return ownership
        }
        await ownership?.applied(names)
    }

    /// From now on changes go to `ownership`; the ones it may have missed are applied first.
    func attach(_ ownership: OwnershipService) async {
        let missed = self.state.withLock { state in
            state.ownership = ownership
            defer { state.missed = [] }
            return state.missed
        }
        if !missed.isEmpty { await ownership.applied(missed) }
    }
}
