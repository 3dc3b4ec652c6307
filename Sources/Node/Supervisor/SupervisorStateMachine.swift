/// The lifecycle of every namespace's backend process. Pure: inputs carry `now` (time since an
/// arbitrary origin), outputs are actions for `Supervisor`, the shell that spawns processes, probes
/// ports and delivers results to waiting requests.
///
/// Rules:
/// - one backend per namespace; concurrent first requests start it once (later ones wait for it);
/// - at most `maxRunning` backends (starting, running or stopping) at once; when full, the least
///   recently used backend with no request in flight is stopped to make room; if every backend is busy
///   the request is rejected (503) instead of queued without bound;
/// - a backend that exits on its own was a crash: it is restarted after an exponential backoff
///   (`restartBackoff`, doubling up to `maxRestartBackoff`); requests meanwhile get 503 + Retry-After;
/// - a port that some other process holds is quarantined and another port is used.
public struct SupervisorStateMachine: Sendable {
    public struct Configuration: Sendable {
        public var ports: ClosedRange<Int>
        public var maxRunning: Int
        public var restartBackoff: Duration = .milliseconds(250)
        public var maxRestartBackoff: Duration = .seconds(30)
        /// A backend that ran at least this long before crashing starts a new backoff series.
        public var stableAfter: Duration = .seconds(30)
        public var portQuarantine: Duration = .seconds(60)

        public init(ports: ClosedRange<Int>, maxRunning: Int) {
            self.ports = ports
            self.maxRunning = maxRunning
        }
    }

    public enum State: Equatable, Sendable {
        /// Waiting for a slot (another backend is being stopped to make room).
        case queued
        case starting(port: Int)
        case running(port: Int, since: Duration)
        /// Being stopped; `restart` when a request arrived meanwhile.
        case stopping(port: Int, restart: Bool)
        /// Crashed or failed to start; not restarted before `until`.
        case backoff(until: Duration)
    }

    /// Why the process ended, as the shell observed it.
    public enum ExitReason: Equatable, Sendable {
        /// Exited after `terminate` was requested.
        case stopped
        /// Exited (or was killed) without being asked to.
        case crashed(status: String)
        /// Did not accept connections within the startup timeout (the shell killed it).
        case startTimeout
        /// Could not be spawned.
        case spawnFailed(String)
        /// Another process already listens on the port.
        case portBusy
    }

    public enum Failure: Equatable, Sendable {
        case noCapacity
        case startFailed(String)
        case crashed
        case backingOff(retryAfter: Duration)
        case stopped
    }

    public enum AcquireResult: Equatable, Sendable {
        case ready(port: Int)
        case wait
        case rejected(Failure)
    }

    public enum Action: Equatable, Sendable {
        case spawn(name: String, port: Int)
        case terminate(name: String)
        case resumeWaiters(name: String, port: Int)
        case failWaiters(name: String, Failure)
        case scheduleRetry(name: String, after: Duration)
        /// The backend is gone and nothing is waiting for it (a `stop` completed).
        case stopped(name: String)
        case crashed(name: String, status: String)
    }

    struct Entry: Equatable, Sendable {
        var state: State
        var inFlight = 0
        var waiters = 0
        var lastUsed: Duration
        var crashesInRow = 0
        var queuedAt: Duration = .zero
    }

    public let configuration: Configuration
    private(set) var entries: [String: Entry] = [:]
    private var portsInUse: [Int: String] = [:]
    private var quarantined: [Int: Duration] = [:]
    /// Namespaces stopped for an archive: refused until released.
    private var held: Set<String> = []
    private var portCursor: Int

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.portCursor = configuration.ports.lowerBound
    }

    // MARK: queries

    public func state(of name: String) -> State? { self.entries[name]?.state }

    /// Every namespace the supervisor tracks (a few: the running and recent ones) with its state.
    public var states: [String: State] { self.entries.mapValues(\.state) }

    /// Backends starting, running or stopping (each holds a port and a process).
    public var processCount: Int { self.portsInUse.count }

    public var runningCount: Int {
        self.entries.values.filter { if case .running = $0.state { true } else { false } }.count
    }

    /// Backends that are running, with their port and how long they have had no request in flight
    /// (nil while one is).
    public func runningBackends(now: Duration) -> [(name: String, port: Int, idleFor: Duration?)] {
        self.entries.compactMap { name, entry in
            guard case .running(let port, _) = entry.state else { return nil }
            return (name, port, entry.inFlight == 0 && entry.waiters == 0 ? now - entry.lastUsed : nil)
        }
    }

    public func inFlight(_ name: String) -> Int { self.entries[name]?.inFlight ?? 0 }

    // MARK: inputs

    /// A request needs `name`'s backend. MUST be balanced by `release` once `.ready` (now or later,
    /// via `.resumeWaiters`) was delivered to it.
    public mutating func acquire(_ name: String, now: Duration) -> (AcquireResult, [Action]) {
        var actions: [Action] = []
        if self.held.contains(name) { return (.rejected(.stopped), actions) }
        guard var entry = self.entries[name] else {
            self.entries[name] = Entry(state: .queued, waiters: 1, lastUsed: now, queuedAt: now)
            let result = self.admit(name, now: now, actions: &actions)
            return (result, actions)
        }
        switch entry.state {
        case .running(let port, _):
            entry.inFlight += 1
            entry.lastUsed = now
            self.entries[name] = entry
            return (.ready(port: port), actions)
        case .starting, .queued:
            entry.waiters += 1
            self.entries[name] = entry
            return (.wait, actions)
        case .stopping(let port, _):
            entry.waiters += 1
            entry.state = .stopping(port: port, restart: true)
            self.entries[name] = entry
            return (.wait, actions)
        case .backoff(let until):
            guard now >= until else {
                return (.rejected(.backingOff(retryAfter: until - now)), actions)
            }
            entry.state = .queued
            entry.waiters += 1
            entry.queuedAt = now
            self.entries[name] = entry
            let result = self.admit(name, now: now, actions: &actions)
            return (result, actions)
        }
    }

    /// A request that was given the backend finished with it.
    public mutating func release(_ name: String, now: Duration) {
        guard var entry = self.entries[name] else { return }
        entry.inFlight = max(0, entry.inFlight - 1)
        entry.lastUsed = now
        self.entries[name] = entry
    }

    /// A waiting request gave up (timeout or cancellation) before the backend was ready.
    public mutating func abandon(_ name: String) {
        guard var entry = self.entries[name], entry.waiters > 0 else { return }
        entry.waiters -= 1
        self.entries[name] = entry
    }

    /// The backend's port accepts connections.
    public mutating func ready(_ name: String, now: Duration) -> [Action] {
        var actions: [Action] = []
        guard var entry = self.entries[name], case .starting(let port) = entry.state else { return actions }
        entry.state = .running(port: port, since: now)
        entry.inFlight += entry.waiters
        entry.waiters = 0
        entry.lastUsed = now
        self.entries[name] = entry
        actions.append(.resumeWaiters(name: name, port: port))
        return actions
    }

    /// The backend process ended (or never started). Exactly one per `.spawn`.
    public mutating func exited(_ name: String, reason: ExitReason, now: Duration) -> [Action] {
        var actions: [Action] = []
        guard var entry = self.entries[name] else { return actions }
        let port: Int
        switch entry.state {
        case .starting(let p), .running(let p, _), .stopping(let p, _): port = p
        case .queued, .backoff: return actions
        }
        self.portsInUse[port] = nil
        let wasRunningSince: Duration? = if case .running(_, let since) = entry.state { since } else { nil }
        switch (entry.state, reason) {
        case (.stopping(_, let restart), _):
            if restart || entry.waiters > 0 {
                entry.state = .queued
                entry.queuedAt = now
                self.entries[name] = entry
                if case .rejected(let failure) = self.admit(name, now: now, actions: &actions) {
                    actions.append(.failWaiters(name: name, failure))
                    self.entries[name]?.waiters = 0
                }
            } else {
                self.entries[name] = nil
                actions.append(.stopped(name: name))
            }
        case (_, .portBusy):
            self.quarantined[port] = now + self.configuration.portQuarantine
            entry.state = .queued
            self.entries[name] = entry
            if case .rejected(let failure) = self.admit(name, now: now, actions: &actions) {
                actions.append(.failWaiters(name: name, failure))
                self.entries[name]?.waiters = 0
            }
        default:
            if let since = wasRunningSince, now - since >= self.configuration.stableAfter { entry.crashesInRow = 0 }
            entry.crashesInRow += 1
            let delay = self.backoff(afterCrashes: entry.crashesInRow)
            entry.state = .backoff(until: now + delay)
            entry.inFlight = 0
            let failure: Failure
            switch reason {
            case .startTimeout: failure = .startFailed("backend did not accept connections in time")
            case .spawnFailed(let message): failure = .startFailed(message)
            default: failure = .crashed
            }
            if entry.waiters > 0 {
                actions.append(.failWaiters(name: name, failure))
                entry.waiters = 0
            }
            self.entries[name] = entry
            if case .crashed(let status) = reason {
                actions.append(.crashed(name: name, status: status))
                actions.append(.scheduleRetry(name: name, after: delay))
            }
        }
        self.admitQueued(now: now, actions: &actions)
        return actions
    }

    /// A restart timer fired: restart a crashed backend whose backoff has passed.
    public mutating func retry(_ name: String, now: Duration) -> [Action] {
        var actions: [Action] = []
        guard var entry = self.entries[name], case .backoff(let until) = entry.state, now >= until else {
            return actions
        }
        entry.state = .queued
        entry.queuedAt = now
        self.entries[name] = entry
        if case .rejected = self.admit(name, now: now, actions: &actions) {
            // No slot now: stay dormant until the next request.
            self.entries[name]?.state = .backoff(until: now)
        }
        return actions
    }

    /// Stops `name`'s backend (delete, archive, shutdown). Ends with `.stopped(name)`. With `hold`,
    /// the backend stays stopped (requests are refused, none restarts it) until `unhold(name)`: an
    /// archive must not race a request that would start the backend and recreate the files.
    public mutating func stop(_ name: String, now: Duration, hold: Bool = false) -> [Action] {
        var actions: [Action] = []
        if hold { self.held.insert(name) }
        guard var entry = self.entries[name] else {
            actions.append(.stopped(name: name))
            return actions
        }
        switch entry.state {
        case .starting(let port), .running(let port, _):
            entry.state = .stopping(port: port, restart: false)
            if entry.waiters > 0 { actions.append(.failWaiters(name: name, .stopped)) }
            entry.waiters = 0
            self.entries[name] = entry
            actions.append(.terminate(name: name))
        case .stopping(let port, _):
            entry.state = .stopping(port: port, restart: false)
            if entry.waiters > 0 { actions.append(.failWaiters(name: name, .stopped)) }
            entry.waiters = 0
            self.entries[name] = entry
        case .queued, .backoff:
            if entry.waiters > 0 { actions.append(.failWaiters(name: name, .stopped)) }
            self.entries[name] = nil
            actions.append(.stopped(name: name))
        }
        return actions
    }

    /// Lets `name` start again after `stop(_:now:hold:)`.
    public mutating func unhold(_ name: String) {
        self.held.remove(name)
    }

    public func isHeld(_ name: String) -> Bool { self.held.contains(name) }

    // MARK: helpers

    private func backoff(afterCrashes crashes: Int) -> Duration {
        var delay = self.configuration.restartBackoff
        for _ in 1..<max(1, crashes) where delay < self.configuration.maxRestartBackoff { delay *= 2 }
        return min(delay, self.configuration.maxRestartBackoff)
    }

    private var capacity: Int {
        min(self.configuration.maxRunning, self.configuration.ports.count)
    }

    /// Starts a queued namespace if a slot and a port are free; otherwise stops the least recently
    /// used idle backend so one frees up, or rejects.
    private mutating func admit(_ name: String, now: Duration, actions: inout [Action]) -> AcquireResult {
        if self.portsInUse.count < self.capacity, let port = self.allocatePort(now: now) {
            self.portsInUse[port] = name
            self.entries[name]?.state = .starting(port: port)
            actions.append(.spawn(name: name, port: port))
            return .wait
        }
        let stopping = self.entries.values.filter { if case .stopping = $0.state { true } else { false } }.count
        let queued = self.entries.values.filter { $0.state == .queued }.count
        if queued <= stopping {
            return .wait  // a slot is already on its way
        }
        let idle = self.entries.filter { entry in
            guard case .running = entry.value.state else { return false }
            return entry.value.inFlight == 0 && entry.value.waiters == 0
        }
        guard let victim = idle.min(by: { ($0.value.lastUsed, $0.key) < ($1.value.lastUsed, $1.key) }) else {
            let waiters = self.entries[name]?.waiters ?? 1
            if waiters <= 1 && self.entries[name]?.inFlight == 0 {
                self.entries[name] = nil
            } else {
                self.entries[name]?.waiters -= 1
            }
            return .rejected(.noCapacity)
        }
        if case .running(let port, _) = victim.value.state {
            self.entries[victim.key]?.state = .stopping(port: port, restart: false)
        }
        actions.append(.terminate(name: victim.key))
        return .wait
    }

    /// Gives freed slots to namespaces queued the longest.
    private mutating func admitQueued(now: Duration, actions: inout [Action]) {
        let queued = self.entries.filter { $0.value.state == .queued }
            .sorted { ($0.value.queuedAt, $0.key) < ($1.value.queuedAt, $1.key) }
        for (name, _) in queued {
            guard self.portsInUse.count < self.capacity, let port = self.allocatePort(now: now) else { return }
            self.portsInUse[port] = name
            self.entries[name]?.state = .starting(port: port)
            actions.append(.spawn(name: name, port: port))
        }
    }

    private mutating func allocatePort(now: Duration) -> Int? {
        let ports = self.configuration.ports
        for _ in 0..<ports.count {
            let port = self.portCursor
            self.portCursor = port == ports.upperBound ? ports.lowerBound : port + 1
            if self.portsInUse[port] != nil { continue }
            if let until = self.quarantined[port] {
                if now < until { continue }
                self.quarantined[port] = nil
            }
            return port
        }
        return nil
    }
}
