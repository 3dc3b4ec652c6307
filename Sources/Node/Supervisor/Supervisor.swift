import Foundation
import Logging
import ServerSupport

/// The shell around `SupervisorStateMachine`: spawns and stops backend processes, delivers ports to
/// waiting requests and counts what happened for `/metrics`.
public actor Supervisor {
    private var machine: SupervisorStateMachine
    private let command: BackendCommand
    private let configuration: NodeConfiguration
    private let logger: Logger
    private let metrics: NodeMetrics
    private let origin = ContinuousClock.now
    private var processes: [String: BackendProcess] = [:]
    private var waiters: [String: [CheckedContinuation<Result<Int, NodeError>, Never>]] = [:]
    private var stopWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var startedAt: [String: ContinuousClock.Instant] = [:]

    /// Whether `name` is registered: a backend is only ever started for a registered namespace.
    private let isRegistered: @Sendable (String) -> Bool

    public init(
        configuration: NodeConfiguration,
        metrics: NodeMetrics,
        logger: Logger,
        isRegistered: @escaping @Sendable (String) -> Bool
    ) {
        self.isRegistered = isRegistered
        var machineConfiguration = SupervisorStateMachine.Configuration(
            ports: configuration.backendPorts,
            maxRunning: configuration.maxRunning
        )
        machineConfiguration.restartBackoff = .milliseconds(250)
        self.machine = SupervisorStateMachine(configuration: machineConfiguration)
        self.command = BackendCommand(
            tursodbBinary: configuration.tursodbBinary,
            maxBodyBytes: configuration.maxBodyBytes,
            historyRetention: configuration.syncHistoryRetention
        )
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    /// Headers every request to a backend carries: the built-in backends' shared secret.
    public nonisolated var backendHeaders: [(String, String)] {
        self.command.isBuiltIn ? [(BackendSecret.headerName, self.command.secret)] : []
    }

    public nonisolated var backendDescription: String {
        self.command.isBuiltIn ? "built-in (\(self.command.displayPath))" : self.command.displayPath
    }

    private var now: Duration { ContinuousClock.now - self.origin }

    /// Returns the port of `name`'s backend, starting it if needed. MUST be balanced by `release`.
    public func acquire(_ name: String) async throws(NodeError) -> Int {
        // Checked in the same actor step as the start: an archive unregisters a namespace before it
        // releases its hold, so a request that looked the record up earlier cannot bring it back.
        guard self.isRegistered(name) else {
            throw NodeError.notFound("namespace \(name) does not exist")
        }
        let (result, actions) = self.machine.acquire(name, now: self.now)
        self.perform(actions)
        switch result {
        case .ready(let port):
            return port
        case .rejected(let failure):
            throw Self.error(for: failure, name: name)
        case .wait:
            let outcome = await withCheckedContinuation { continuation in
                self.waiters[name, default: []].append(continuation)
            }
            return try outcome.get()
        }
    }

    public func release(_ name: String) {
        self.machine.release(name, now: self.now)
        self.metrics.setRunning(self.machine.runningCount)
    }

    /// Stops `name`'s backend and waits until its process is gone. With `hold`, nothing starts it
    /// again until `unhold(name)`.
    public func stop(_ name: String, hold: Bool = false) async {
        let actions = self.machine.stop(name, now: self.now, hold: hold)
        if actions.contains(.stopped(name: name)) {
            self.perform(actions)
            return
        }
        await withCheckedContinuation { continuation in
            self.stopWaiters[name, default: []].append(continuation)
            self.perform(actions)
        }
    }

    /// Lets `name`'s backend start again after `stop(_:hold:)`.
    public func unhold(_ name: String) {
        self.machine.unhold(name)
    }

    /// Stops every backend (shutdown), killing those still alive after `timeout`.
    public func stopAll(timeout: Duration) async {
        let names = Array(self.processes.keys)
        await withTaskGroup(of: Void.self) { group in
            for name in names { group.addTask { await self.stop(name) } }
            group.addTask {
                try? await Task.sleep(for: timeout)
                await self.killAll()
            }
            for _ in names { await group.next() }
            group.cancelAll()
        }
    }

    private func killAll() {
        for process in self.processes.values { process.kill() }
    }

    public func state(of name: String) -> SupervisorStateMachine.State? { self.machine.state(of: name) }

    public func pid(of name: String) -> Int32? { self.processes[name]?.processID }

    /// The state and process id of every namespace the supervisor tracks, in one call (for lists).
    public func processStates() -> [String: ProcessState] {
        self.machine.states.mapValues { ProcessState(state: $0, pid: nil) }.merging(
            self.processes.mapValues { ProcessState(state: nil, pid: $0.processID) }
        ) { tracked, process in ProcessState(state: tracked.state, pid: process.pid) }
    }

    public struct ProcessState: Sendable {
        public var state: SupervisorStateMachine.State?
        public var pid: Int32?
    }

    public var runningCount: Int { self.machine.runningCount }

    /// Running backends with their port and idle time (see `SupervisorStateMachine.runningBackends`).
    public func runningBackends() -> [(name: String, port: Int, idleFor: Duration?)] {
        self.machine.runningBackends(now: self.now)
    }

    public nonisolated var isBuiltIn: Bool { self.command.isBuiltIn }

    // MARK: actions

    private func perform(_ actions: [SupervisorStateMachine.Action]) {
        for action in actions {
            switch action {
            case .spawn(let name, let port):
                self.spawn(name, port: port)
            case .terminate(let name):
                self.logger.info("stopping backend", metadata: ["namespace": "\(name)"])
                self.processes[name]?.terminate()
            case .resumeWaiters(let name, let port):
                for waiter in self.waiters.removeValue(forKey: name) ?? [] { waiter.resume(returning: .success(port)) }
            case .failWaiters(let name, let failure):
                let error = Self.error(for: failure, name: name)
                for waiter in self.waiters.removeValue(forKey: name) ?? [] { waiter.resume(returning: .failure(error)) }
            case .scheduleRetry(let name, let delay):
                Task {
                    try? await Task.sleep(for: delay)
                    self.retry(name)
                }
            case .stopped(let name):
                for waiter in self.stopWaiters.removeValue(forKey: name) ?? [] { waiter.resume() }
            case .crashed(let name, let status):
                self.metrics.backendCrashes.increment()
                self.logger.warning(
                    "backend crashed; restarting with backoff",
                    metadata: ["namespace": "\(name)", "backend.status": "\(status)"]
                )
            }
        }
        self.metrics.setRunning(self.machine.runningCount)
    }

    private func retry(_ name: String) {
        let actions = self.machine.retry(name, now: self.now)
        if actions.contains(where: { if case .spawn = $0 { true } else { false } }) {
            self.metrics.backendRestarts.increment()
        }
        self.perform(actions)
    }

    private func spawn(_ name: String, port: Int) {
        let process = BackendProcess(name: name, port: port)
        self.processes[name] = process
        self.metrics.backendStarts.increment()
        let started = ContinuousClock.now
        self.startedAt[name] = started
        let command = self.command
        let path = self.configuration.databasePath(name)
        let timeout = self.configuration.startupTimeout
        let logger = self.logger
        Task {
            let reason = await process.run(
                command: command,
                databasePath: path,
                startupTimeout: timeout,
                logger: logger,
                onSpawned: { pid in
                    Task { await self.spawned(name, process: process, pid: pid) }
                },
                onReady: {
                    Task { await self.ready(name, process: process, startedAt: started) }
                }
            )
            self.exited(name, process: process, reason: reason)
        }
    }

    private func spawned(_ name: String, process: BackendProcess, pid: Int32) {
        PIDFile.write(directory: self.configuration.stateDirectory, name: name, pid: pid)
    }

    private func ready(_ name: String, process: BackendProcess, startedAt: ContinuousClock.Instant) {
        guard self.processes[name] === process else { return }
        let elapsed = ContinuousClock.now - startedAt
        self.metrics.coldStart.record(elapsed)
        self.logger.info(
            "namespace running",
            metadata: [
                "namespace": "\(name)", "backend.port": "\(process.port)",
                "backend.pid": "\(process.processID.map(String.init) ?? "?")",
                "backend.startup_ms":
                    "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
            ]
        )
        self.perform(self.machine.ready(name, now: self.now))
    }

    private func exited(_ name: String, process: BackendProcess, reason: SupervisorStateMachine.ExitReason) {
        if self.processes[name] === process {
            self.processes[name] = nil
            PIDFile.remove(directory: self.configuration.stateDirectory, name: name)
        }
        if case .spawnFailed(let message) = reason {
            self.logger.error("cannot start backend", metadata: ["namespace": "\(name)", "error": "\(message)"])
        }
        if reason == .portBusy {
            self.logger.warning(
                "backend port is held by another process; using another port",
                metadata: ["namespace": "\(name)", "backend.port": "\(process.port)"]
            )
        }
        self.perform(self.machine.exited(name, reason: reason, now: self.now))
    }

    static func error(for failure: SupervisorStateMachine.Failure, name: String) -> NodeError {
        switch failure {
        case .noCapacity:
            return NodeError(
                .backendUnavailable,
                "cannot start namespace \(name): all backend slots are busy with requests (TURSO_MAX_RUNNING); retry shortly",
                status: 503,
                retryAfter: 1
            )
        case .startFailed(let message):
            return NodeError(
                .backendFailed,
                "backend for namespace \(name) failed to start: \(message)",
                status: 503,
                retryAfter: 1
            )
        case .crashed:
            return NodeError(
                .backendFailed,
                "backend for namespace \(name) crashed; it is being restarted",
                status: 503,
                retryAfter: 1
            )
        case .backingOff(let retryAfter):
            return NodeError(
                .backendFailed,
                "backend for namespace \(name) is restarting after a failure",
                status: 503,
                retryAfter: max(1, Int(retryAfter.components.seconds) + 1)
            )
        case .stopped:
            return NodeError(.backendUnavailable, "namespace \(name) is being stopped", status: 503, retryAfter: 1)
        }
    }
}
