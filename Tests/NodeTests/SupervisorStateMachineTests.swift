import Testing

@testable import Node

@Suite("Supervisor state machine")
struct SupervisorStateMachineTests {
    typealias Machine = SupervisorStateMachine

    func machine(ports: ClosedRange<Int> = 9000...9009, maxRunning: Int = 10) -> Machine {
        Machine(configuration: .init(ports: ports, maxRunning: maxRunning))
    }

    /// Starts `name` and makes it ready; returns its port.
    func start(_ m: inout Machine, _ name: String, at now: Duration) -> Int {
        let (result, actions) = m.acquire(name, now: now)
        #expect(result == .wait)
        guard case .spawn(_, let port)? = actions.first else {
            Issue.record("expected a spawn, got \(actions)")
            return -1
        }
        #expect(m.ready(name, now: now) == [.resumeWaiters(name: name, port: port)])
        return port
    }

    @Test func concurrentFirstRequestsStartOnce() {
        var m = self.machine()
        let (first, firstActions) = m.acquire("a", now: .zero)
        let (second, secondActions) = m.acquire("a", now: .milliseconds(1))
        #expect(first == .wait)
        #expect(second == .wait)
        #expect(firstActions == [.spawn(name: "a", port: 9000)])
        #expect(secondActions.isEmpty)
        #expect(m.ready("a", now: .milliseconds(5)) == [.resumeWaiters(name: "a", port: 9000)])
        #expect(m.inFlight("a") == 2)
        let (third, thirdActions) = m.acquire("a", now: .milliseconds(6))
        #expect(third == .ready(port: 9000))
        #expect(thirdActions.isEmpty)
    }

    /// An archive stops a namespace held: a request that arrives while it stops must neither turn the
    /// stop into a restart (the stop would never end) nor start it again before it is released.
    @Test func heldStopIsNeverTurnedIntoARestart() {
        var m = self.machine()
        _ = self.start(&m, "a", at: .seconds(1))
        #expect(m.stop("a", now: .seconds(2), hold: true) == [.terminate(name: "a")])
        let (during, duringActions) = m.acquire("a", now: .seconds(3))
        #expect(during == .rejected(.stopped))
        #expect(duringActions.isEmpty)
        #expect(m.exited("a", reason: .stopped, now: .seconds(4)) == [.stopped(name: "a")])
        let (after, _) = m.acquire("a", now: .seconds(5))
        #expect(after == .rejected(.stopped))
        m.unhold("a")
        let (released, actions) = m.acquire("a", now: .seconds(6))
        #expect(released == .wait)
        #expect(actions.count == 1)
    }

    @Test func leastRecentlyUsedIdleBackendIsStoppedWhenFull() {
        var m = self.machine(maxRunning: 2)
        _ = self.start(&m, "a", at: .seconds(1))
        m.release("a", now: .seconds(1))
        _ = self.start(&m, "b", at: .seconds(2))
        m.release("b", now: .seconds(2))
        let (result, actions) = m.acquire("c", now: .seconds(3))
        #expect(result == .wait)
        #expect(actions == [.terminate(name: "a")])
        let after = m.exited("a", reason: .stopped, now: .seconds(4))
        #expect(after == [.stopped(name: "a"), .spawn(name: "c", port: 9002)])
        #expect(m.state(of: "a") == nil)
    }

    @Test func busyBackendsAreNotEvictedAndTheRequestIsRejected() {
        var m = self.machine(maxRunning: 1)
        _ = self.start(&m, "a", at: .seconds(1))  // still in flight
        let (result, actions) = m.acquire("b", now: .seconds(2))
        #expect(result == .rejected(.noCapacity))
        #expect(actions.isEmpty)
        #expect(m.state(of: "b") == nil)
    }

    @Test func crashFailsWaitersAndRestartsWithGrowingBackoff() {
        var m = self.machine()
        _ = self.start(&m, "a", at: .seconds(1))
        let crash = m.exited("a", reason: .crashed(status: "signaled(9)"), now: .seconds(2))
        #expect(
            crash == [.crashed(name: "a", status: "signaled(9)"), .scheduleRetry(name: "a", after: .milliseconds(250))]
        )
        let (during, _) = m.acquire("a", now: .seconds(2) + .milliseconds(100))
        #expect(during == .rejected(.backingOff(retryAfter: .milliseconds(150))))
        let restart = m.retry("a", now: .seconds(3))
        #expect(restart.count == 1)
        guard case .spawn(_, let port)? = restart.first else { return }
        #expect(m.ready("a", now: .seconds(3)) == [.resumeWaiters(name: "a", port: port)])
        // A second crash soon after doubles the delay.
        let second = m.exited("a", reason: .crashed(status: "exited(1)"), now: .seconds(4))
        #expect(second.last == .scheduleRetry(name: "a", after: .milliseconds(500)))
    }

    @Test func startTimeoutFailsWaitersWithoutEagerRestart() {
        var m = self.machine()
        _ = m.acquire("a", now: .zero)
        let actions = m.exited("a", reason: .startTimeout, now: .seconds(5))
        #expect(actions == [.failWaiters(name: "a", .startFailed("backend did not accept connections in time"))])
        if case .backoff = m.state(of: "a") {} else { Issue.record("expected backoff") }
    }

    @Test func busyPortIsQuarantinedAndAnotherUsed() {
        var m = self.machine(ports: 9000...9001)
        _ = m.acquire("a", now: .zero)
        let actions = m.exited("a", reason: .portBusy, now: .milliseconds(1))
        #expect(actions == [.spawn(name: "a", port: 9001)])
        // The quarantined port is skipped for the next namespace too, so b cannot start until a stops.
        m.release("a", now: .milliseconds(2))
        _ = m.ready("a", now: .milliseconds(2))
        m.release("a", now: .milliseconds(3))
        let (result, more) = m.acquire("b", now: .milliseconds(4))
        #expect(result == .wait)
        #expect(more == [.terminate(name: "a")])
    }

    @Test func stopTerminatesAndCompletes() {
        var m = self.machine()
        _ = self.start(&m, "a", at: .zero)
        #expect(m.stop("a", now: .seconds(1)) == [.terminate(name: "a")])
        #expect(m.exited("a", reason: .stopped, now: .seconds(2)) == [.stopped(name: "a")])
        #expect(m.stop("unknown", now: .seconds(3)) == [.stopped(name: "unknown")])
    }

    @Test func requestDuringStopRestartsTheBackend() {
        var m = self.machine()
        _ = self.start(&m, "a", at: .zero)
        m.release("a", now: .zero)
        _ = m.stop("a", now: .seconds(1))
        // Eviction-style stop (not a delete): a new request waits and the backend comes back.
        var evicting = m
        let (result, _) = evicting.acquire("a", now: .seconds(1))
        #expect(result == .wait)
        let actions = evicting.exited("a", reason: .stopped, now: .seconds(2))
        #expect(actions.contains { if case .spawn(name: "a", _) = $0 { true } else { false } })
    }
}
