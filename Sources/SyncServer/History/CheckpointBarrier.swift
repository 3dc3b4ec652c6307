import Dispatch
import Synchronization

/// Keeps checkpoints and requests apart: a checkpoint runs only with no request in flight (pulls,
/// Hrana requests), no Hrana transaction open and no chunked bootstrap pinned to a revision.
///
/// `close()` makes new requests wait, except those continuing an open transaction (they must be able
/// to finish it); `tryExclusive` then succeeds once everything has drained, and from then on every
/// request waits until `open()`. Requests never wait for longer than the checkpoint's bounded attempt.
final class CheckpointBarrier: Sendable {
    private struct State {
        var active = 0
        var closed = false
        var exclusive = false
        /// Revisions chunked bootstraps are reading, with their first and latest use (uptime, ns).
        var pins: [String: (first: UInt64, last: UInt64)] = [:]
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// How long after its last chunk a chunked bootstrap keeps its pinned revision, and how long
    /// one bootstrap may keep checkpoints away in all.
    static let pinDuration: UInt64 = 60_000_000_000
    static let maxPinDuration: UInt64 = 600_000_000_000

    /// What `tryExclusive` found.
    enum Attempt: Equatable {
        case acquired
        /// Requests, transactions or pins remain; pins alone until the given uptime (ns).
        case waiting(pinnedUntil: UInt64?)
    }

    /// A request's admission; leaves when `leave()` is called or when it is released, whichever is first.
    final class Ticket: Sendable {
        private let barrier: CheckpointBarrier
        private let left = Atomic(false)

        fileprivate init(barrier: CheckpointBarrier) { self.barrier = barrier }

        func leave() {
            if !self.left.exchange(true, ordering: .acquiringAndReleasing) { self.barrier.leave() }
        }

        deinit { self.leave() }
    }

    /// Waits until requests are admitted, then admits one. `continuingTransaction` requests pass a
    /// closed barrier (not an exclusive one).
    func enter(continuingTransaction: Bool) async -> Ticket {
        while true {
            let admitted = self.state.withLock { state in
                guard Self.admits(state, continuingTransaction) else { return false }
                state.active += 1
                return true
            }
            if admitted { return Ticket(barrier: self) }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = self.state.withLock { state in
                    if Self.admits(state, continuingTransaction) { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    private static func admits(_ state: State, _ continuingTransaction: Bool) -> Bool {
        !state.exclusive && (!state.closed || continuingTransaction)
    }

    private func leave() {
        self.state.withLock { $0.active -= 1 }
    }

    /// Keeps checkpoints away while a chunked bootstrap reads `revision` in parts: up to
    /// `pinDuration` after its latest chunk, `maxPinDuration` in all.
    func pin(_ revision: String) {
        let now = DispatchTime.now().uptimeNanoseconds
        self.state.withLock { state in
            state.pins[revision] = (state.pins[revision]?.first ?? now, now)
        }
    }

    /// The uptime until which live pins keep checkpoints away, dropping expired ones.
    private static func pinnedUntil(_ state: inout State, now: UInt64) -> UInt64? {
        state.pins = state.pins.filter { Self.expiry($0.value) > now }
        return state.pins.values.map(Self.expiry).max()
    }

    private static func expiry(_ pin: (first: UInt64, last: UInt64)) -> UInt64 {
        min(pin.last + Self.pinDuration, pin.first + Self.maxPinDuration)
    }

    /// Starts a checkpoint attempt; false when one is already running.
    func close() -> Bool {
        self.state.withLock { state in
            guard !state.closed else { return false }
            state.closed = true
            return true
        }
    }

    /// Takes the barrier exclusively when nothing is in flight and `isQuiet` (no open transaction)
    /// holds, checked under the barrier's lock so that no request can slip in between.
    func tryExclusive(isQuiet: () -> Bool) -> Attempt {
        self.state.withLock { state in
            let pinnedUntil = Self.pinnedUntil(&state, now: DispatchTime.now().uptimeNanoseconds)
            guard state.closed, !state.exclusive, state.active == 0, pinnedUntil == nil, isQuiet() else {
                return .waiting(pinnedUntil: pinnedUntil)
            }
            state.exclusive = true
            return .acquired
        }
    }

    /// Ends the checkpoint attempt and admits everyone waiting.
    func open() {
        let waiters = self.state.withLock { state in
            state.closed = false
            state.exclusive = false
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
