import Synchronization

/// Directory changes for an observer that is still being built (the ownership service reads the
/// directory while the log may apply more): the names changed meanwhile are kept and handed over
/// once it is attached (applying a name again is harmless: the machine settles on the current entry).
final class DeferredObserver: Sendable {
    typealias Deliver = @Sendable (Set<String>) async -> Void

    private struct State {
        var deliver: Deliver?
        var missed: Set<String> = []
    }

    private let state = Mutex(State())

    /// The log's observer: forwards once attached, keeps the names until then.
    func changed(_ names: Set<String>) async {
        let deliver = self.state.withLock { state -> Deliver? in
            guard let deliver = state.deliver else {
                state.missed.formUnion(names)
                return nil
            }
            return deliver
        }
        await deliver?(names)
    }

    /// From now on changes go to `deliver`; the ones it may have missed are handed over first.
    func attach(_ deliver: @escaping Deliver) async {
        let missed = self.state.withLock { state in
            state.deliver = deliver
            defer { state.missed = [] }
            return state.missed
        }
        if !missed.isEmpty { await deliver(missed) }
    }
}
