import Foundation
import Logging
import NIOCore
import NIOPosix
import Subprocess
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One backend process: spawns it in its own process group, forwards its output line by line to the
/// log as `tursodb.<name>`, probes its port until it accepts, and stops it (SIGTERM, then SIGKILL).
final class BackendProcess: Sendable {
    let name: String
    let port: Int
    private let pid = Mutex<Int32?>(nil)
    private let terminating = Atomic<Bool>(false)

    /// Exit status of a built-in backend that could not bind its port.
    static let addressInUseExitCode: TerminationStatus.Code = 98

    init(name: String, port: Int) {
        self.name = name
        self.port = port
    }

    var processID: Int32? { self.pid.withLock { $0 } }

    /// Runs the process to its end. `onSpawned` gets the pid, `onReady` is called once the port
    /// accepts. Returns why it ended.
    func run(
        command: BackendCommand,
        databasePath: String,
        startupTimeout: Duration,
        logger: Logger,
        onSpawned: @escaping @Sendable (Int32) -> Void,
        onReady: @escaping @Sendable () -> Void
    ) async -> SupervisorStateMachine.ExitReason {
        if await Self.accepts(port: self.port) { return .portBusy }
        var options = PlatformOptions()
        options.processGroupID = 0
        let environment = Environment.inherit.updating(
            Dictionary(
                uniqueKeysWithValues: command.environment.map { (Environment.Key(stringLiteral: $0.key), $0.value) }
            )
        )
        let configuration = Configuration(
            executable: .path(.init(command.executable)),
            arguments: Arguments(command.arguments(port: self.port, databasePath: databasePath)),
            environment: environment,
            platformOptions: options
        )
        let outputLogger = Logger(label: "tursodb.\(self.name)")
        let readyState = ReadyState()
        do {
            let result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .sequence) {
                execution in
                let pid = execution.processIdentifier.value
                self.pid.withLock { $0 = pid }
                onSpawned(pid)
                if self.terminating.load(ordering: .relaxed) { self.signal(SIGTERM) }
                // Output readers end when the process closes its pipes (it exited); the readiness
                // probe stops then too, instead of polling a dead process until the timeout.
                await withTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        for await line in Self.lines(execution.standardOutput) {
                            outputLogger.info("\(line)")
                        }
                        return true
                    }
                    group.addTask {
                        for await line in Self.lines(execution.standardError) {
                            outputLogger.info("\(line)")
                        }
                        return true
                    }
                    group.addTask {
                        let deadline = ContinuousClock.now + startupTimeout
                        while ContinuousClock.now < deadline && !self.terminating.load(ordering: .relaxed)
                            && !Task.isCancelled
                        {
                            if await Self.accepts(port: self.port) {
                                readyState.value.store(1, ordering: .relaxed)
                                onReady()
                                return false
                            }
                            try? await Task.sleep(for: .milliseconds(15))
                        }
                        if !self.terminating.load(ordering: .relaxed) && !Task.isCancelled {
                            readyState.value.store(2, ordering: .relaxed)
                            logger.warning(
                                "backend did not accept connections in time",
                                metadata: ["namespace": "\(self.name)", "backend.port": "\(self.port)"]
                            )
                            self.signal(SIGKILL)
                        }
                        return false
                    }
                    var readersDone = 0
                    while let isReader = await group.next() {
                        if isReader {
                            readersDone += 1
                            if readersDone == 2 { group.cancelAll() }
                        }
                    }
                }
                self.pid.withLock { $0 = nil }
            }
            if self.terminating.load(ordering: .relaxed) { return .stopped }
            if readyState.value.load(ordering: .relaxed) == 2 { return .startTimeout }
            // The built-in backend exits with EADDRINUSE (98) when its port is taken (often by an
            // outgoing connection's ephemeral port): try another port instead of failing the request.
            if readyState.value.load(ordering: .relaxed) == 0,
                case .exited(Self.addressInUseExitCode) = result.terminationStatus
            {
                return .portBusy
            }
            return .crashed(status: "\(result.terminationStatus)")
        } catch {
            self.pid.withLock { $0 = nil }
            return .spawnFailed("cannot start \(command.executable): \(error)")
        }
    }

    /// Asks the backend to stop: SIGTERM to its process group, SIGKILL after `grace`.
    func terminate(grace: Duration = .seconds(5)) {
        self.terminating.store(true, ordering: .relaxed)
        self.signal(SIGTERM)
        Task {
            try? await Task.sleep(for: grace)
            self.signal(SIGKILL)
        }
    }

    /// Kills the backend at once (node shutdown deadline, tests).
    func kill() {
        self.terminating.store(true, ordering: .relaxed)
        self.signal(SIGKILL)
    }

    private func signal(_ number: Int32) {
        self.pid.withLock { pid in
            if let pid { _ = Glibc.kill(-pid, number) }
        }
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(250))
                .connect(host: "127.0.0.1", port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    /// Splits a byte stream into lines (without the newline), tolerating invalid UTF-8.
    static func lines(_ sequence: SubprocessOutputSequence) -> AsyncStream<String> {
        AsyncStream { continuation in
            let task = Task {
                var pending: [UInt8] = []
                do {
                    for try await buffer in sequence {
                        buffer.withUnsafeBytes { pending.append(contentsOf: $0) }
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            continuation.yield(String(decoding: pending[..<newline], as: UTF8.self))
                            pending.removeSubrange(...newline)
                        }
                        if pending.count > 64 << 10 {
                            continuation.yield(String(decoding: pending, as: UTF8.self))
                            pending.removeAll()
                        }
                    }
                } catch {}
                if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Whether the backend became ready: 0 waiting, 1 ready, 2 timed out.
private final class ReadyState: Sendable {
    let value = Atomic<Int>(0)
}
