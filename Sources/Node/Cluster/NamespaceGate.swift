import Foundation
import Synchronization

/// Admission of requests to the namespaces this node holds: counts requests in flight and lets a
/// handoff fence a namespace (new requests wait, the fence waits for those in flight), then release
/// the waiters either here again or towards the member the namespace moved to.
final class NamespaceGate: Sendable {
    enum Admission: Equatable {
        /// Admitted; the caller MUST call `exit` when the request is done.
        case admitted
        /// The namespace was handed off while the request waited; it lives on this member now.
        case moved(String)
        /// The fence outlasted the wait.
        case timedOut
    }

    private struct Slot {
        var inFlight = 0
        var fenced = false
        var waiters: [UUID: CheckedContinuation<Admission?, Never>] = [:]
        var drainWaiter: CheckedContinuation<Void, Never>?
        /// The fence stopped waiting for requests in flight (its drain timeout passed).
        var drainExpired = false
        var isIdle: Bool { self.inFlight == 0 && !self.fenced && self.waiters.isEmpty }
    }

    private struct State {
        var slots: [String: Slot] = [:]
        /// Namespaces handed off recently, with their new holder and when (for redirects).
        var moved: [String: (member: String, at: ContinuousClock.Instant)] = [:]
    }

    private let state = Mutex(State())
    /// How long a handed-off namespace's new home is remembered.
    static let movedMemory: Duration = .seconds(300)

    /// Admits a request, waiting at most `timeout` while the namespace is fenced.
    func enter(_ name: String, timeout: Duration) async -> Admission {
        let deadline = ContinuousClock.now + timeout
        while true {
            let id = UUID()
            let result: Admission? = await withCheckedContinuation { continuation in
                let admitted = self.state.withLock { state -> Bool in
                    var slot = state.slots[name] ?? Slot()
                    if !slot.fenced {
                        slot.inFlight += 1
                        state.slots[name] = slot
                        return true
                    }
                    slot.waiters[id] = continuation
                    state.slots[name] = slot
                    return false
                }
                if admitted {
                    continuation.resume(returning: .admitted)
                } else {
                    Task {
                        try? await Task.sleep(until: deadline)
                        self.expire(name, waiter: id)
                    }
                }
            }
            // nil: the fence was lifted with the namespace still here; try again.
            if let result { return result }
        }
    }

    func exit(_ name: String) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var slot = state.slots[name] else { return nil }
            slot.inFlight -= 1
            var waiter: CheckedContinuation<Void, Never>?
            if slot.inFlight == 0, slot.fenced {
                waiter = slot.drainWaiter
                slot.drainWaiter = nil
            }
            state.slots[name] = slot.isIdle ? nil : slot
            return waiter
        }
        waiter?.resume()
    }

    var inFlightTotal: Int { self.state.withLock { $0.slots.values.reduce(0) { $0 + $1.inFlight } } }

    func isFenced(_ name: String) -> Bool { self.state.withLock { $0.slots[name]?.fenced ?? false } }

    /// Fences `name`: new requests wait. Returns false if it was fenced already (someone else is
    /// handing it off or archiving it); otherwise waits until the requests in flight finished or
    /// `drainTimeout` passed, and returns true.
    func fence(_ name: String, drainTimeout: Duration) async -> Bool {
        let claimed = self.state.withLock { state -> Bool in
            var slot = state.slots[name] ?? Slot()
            guard !slot.fenced else { return false }
            slot.fenced = true
            slot.drainExpired = false
            state.slots[name] = slot
            return true
        }
        guard claimed else { return false }
        let timer = Task {
            try? await Task.sleep(for: drainTimeout)
            self.releaseDrainWaiter(name)
        }
        await withCheckedContinuation { continuation in
            let done = self.state.withLock { state -> Bool in
                guard state.slots[name]!.inFlight > 0, !state.slots[name]!.drainExpired else { return true }
                state.slots[name]!.drainWaiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
        timer.cancel()
        return true
    }

    private func releaseDrainWaiter(_ name: String) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.slots[name]?.fenced == true else { return nil }
            state.slots[name]!.drainExpired = true
            defer { state.slots[name]!.drainWaiter = nil }
            return state.slots[name]!.drainWaiter
        }
        waiter?.resume()
    }

    /// Lifts the fence. With `movedTo`, waiting requests are told where the namespace went;
    /// otherwise they are admitted here.
    func unfence(_ name: String, movedTo: String?) {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Admission?, Never>] in
            if let movedTo { state.moved[name] = (movedTo, .now) } else { state.moved[name] = nil }
            if state.moved.count > 10_000 {
                let now = ContinuousClock.now
                state.moved = state.moved.filter { now - $0.value.at <= Self.movedMemory }
            }
            guard var slot = state.slots[name] else { return [] }
            slot.fenced = false
            let waiters = Array(slot.waiters.values)
            slot.waiters = [:]
            state.slots[name] = slot.isIdle ? nil : slot
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: movedTo.map { .moved($0) }) }
    }

    /// Gives up waiting for one fenced request.
    func expire(_ name: String, waiter id: UUID) {
        let waiter = self.state.withLock { state in state.slots[name]?.waiters.removeValue(forKey: id) }
        waiter?.resume(returning: .timedOut)
    }

    /// The member a namespace was handed to recently, if any.
    func movedTo(_ name: String) -> String? {
        self.state.withLock { state in
            guard let entry = state.moved[name] else { return nil }
            if ContinuousClock.now - entry.at > Self.movedMemory {
                state.moved[name] = nil
                return nil
            }
            return entry.member
        }
    }

    /// Forgets a redirect (the namespace came back to this node).
    func forgetMove(_ name: String) { _ = self.state.withLock { $0.moved.removeValue(forKey: name) } }
}
