import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// Asks built-in backends to checkpoint (see `CheckpointPolicy` for when): every `interval` it reads
/// the WAL size of each running namespace and sends `POST /_turso/checkpoint` to those that are due.
/// An external tursodb is never asked (it has no such endpoint and never checkpoints).
///
/// A namespace with followers is shipped to its committed end first, and the backend is asked to
/// retire exactly that end (`wal_end`): it refuses when a transaction committed meanwhile, so no
/// frame a reachable follower lacks is ever retired. The followers then retire the generation too.
actor CheckpointScheduler {
    static let interval: Duration = .milliseconds(250)

    private var policy: CheckpointPolicy
    private let service: NamespaceService
    private let client: HTTPClient
    private let shipper: WALShipper?
    private let logger: Logger
    private let origin = ContinuousClock.now

    init(service: NamespaceService, client: HTTPClient, shipper: WALShipper? = nil, logger: Logger) {
        self.policy = CheckpointPolicy(
            walLimit: service.configuration.syncWALLimit,
            idleAfter: service.configuration.checkpointWhenIdleFor
        )
        self.service = service
        self.client = client
        self.shipper = shipper
        self.logger = logger
    }

    /// Runs until cancelled.
    func run() async {
        guard self.service.supervisor.isBuiltIn else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.interval)
            await self.tick()
        }
    }

    func tick() async {
        let backends = await self.service.supervisor.runningBackends()
        self.policy.retain(Set(backends.map(\.name)))
        let now = ContinuousClock.now - self.origin
        for backend in backends {
            let walBytes = self.walBytes(backend.name)
            guard let reason = self.policy.due(backend.name, walBytes: walBytes, idleFor: backend.idleFor, now: now)
            else { continue }
            Task { await self.checkpoint(backend.name, port: backend.port, reason: reason, walBytes: walBytes) }
        }
    }

    private func walBytes(_ name: String) -> Int {
        NamespaceFiles.size(NamespaceFiles(configuration: self.service.configuration).livePath(name, .wal))
    }

    private func checkpoint(_ name: String, port: Int, reason: CheckpointPolicy.Reason, walBytes: Int) async {
        guard let shipper else {
            self.policy.finished(
                name,
                await self.checkpoint(name, port: port, reason: reason, walBytes: walBytes, query: "")
            )
            return
        }
        // Under the shipper's lock whether or not there are followers (decided inside it): no copy
        // is read while the WAL is retired, and no follower set applied meanwhile is missed. Taken
        // before the backend holds its barrier, so requests never wait for a shipping pass.
        let outcome = await shipper.locks.withLock(name) { @Sendable () async -> CheckpointPolicy.Outcome in
            guard shipper.hasFollowers(name) else {
                return await self.checkpoint(name, port: port, reason: reason, walBytes: walBytes, query: "")
            }
            return await self.replicatedCheckpoint(name, port: port, reason: reason, walBytes: walBytes, shipper)
        }
        self.policy.finished(name, outcome)
    }

    /// A checkpoint of a namespace with followers, in two halves: the backend holds its barrier
    /// (nothing in flight, every request waits) and names its committed end; the followers get the
    /// WAL up to it; the backend retires exactly that end. A follower that cannot be reached is
    /// caught up later; one that is reachable and does not take the WAL defers the checkpoint
    /// until the WAL is twice its limit. Runs under the shipper's lock of the namespace.
    private func replicatedCheckpoint(
        _ name: String,
        port: Int,
        reason: CheckpointPolicy.Reason,
        walBytes: Int,
        _ shipper: WALShipper
    ) async -> CheckpointPolicy.Outcome {
        let (status, body) = await self.post(port, "?hold_ms=\(Self.holdMilliseconds)&wait_ms=2000")
        struct Held: Decodable {
            var held: String
            var wal_end: Int
        }
        guard status == 200, let held = try? JSONDecoder().decode(Held.self, from: Data(body)) else {
            self.service.metrics.checkpointsBusy.increment()
            return status == 409 ? .deferred : .failed
        }
        let overdue = walBytes >= 2 * self.service.configuration.syncWALLimit
        guard case .shipped(let end) = await shipper.prepareCheckpoint(name, overdue: overdue),
            end.offset == held.wal_end
        else {
            _ = await self.post(port, "?release=\(held.held)")
            self.service.metrics.checkpointsBusy.increment()
            return .deferred
        }
        let outcome = await self.checkpoint(
            name,
            port: port,
            reason: reason,
            walBytes: walBytes,
            query: "?held=\(held.held)&wal_end=\(end.offset)"
        )
        if case .done = outcome { await shipper.checkpointed(name, end: end) }
        return outcome
    }

    /// How long the backend holds its barrier for the followers to be shipped to at most.
    static let holdMilliseconds = 3000

    private func post(_ port: Int, _ query: String) async -> (Int, [UInt8]) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/_turso/checkpoint\(query)")
        request.method = .POST
        for (header, value) in self.service.supervisor.backendHeaders {
            request.headers.add(name: header, value: value)
        }
        guard let response = try? await self.client.execute(request, timeout: .seconds(10)),
            let body = try? await response.body.collect(upTo: 64 << 10)
        else { return (0, []) }
        return (Int(response.status.code), Array(body.readableBytesView))
    }

    /// Asks the backend to checkpoint (`query`: finishing a held one).
    private func checkpoint(
        _ name: String,
        port: Int,
        reason: CheckpointPolicy.Reason,
        walBytes: Int,
        query: String
    ) async -> CheckpointPolicy.Outcome {
        let metrics = self.service.metrics
        let started = ContinuousClock.now
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/_turso/checkpoint\(query)")
        request.method = .POST
        for (header, value) in self.service.supervisor.backendHeaders {
            request.headers.add(name: header, value: value)
        }
        let outcome: CheckpointPolicy.Outcome
        do {
            let response = try await self.client.execute(request, timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 64 << 10)
            metrics.checkpointDuration.record(ContinuousClock.now - started)
            switch response.status.code {
            case 200:
                outcome = .done(
                    walBytesAfter: self.walBytes(name)
                )
                metrics.checkpoints.increment()
                metrics.checkpointedBytes.increment(by: Int64(walBytes))
                self.logger.debug(
                    "checkpointed",
                    metadata: [
                        "namespace": "\(name)", "checkpoint.reason": "\(reason.rawValue)",
                        "checkpoint.result": "\(String(buffer: body))",
                    ]
                )
            case 409:
                outcome = .deferred
                metrics.checkpointsBusy.increment()
                self.logger.debug("checkpoint deferred", metadata: ["namespace": "\(name)"])
            default:
                outcome = .failed
                metrics.checkpointsFailed.increment()
                self.logger.warning(
                    "checkpoint failed",
                    metadata: [
                        "namespace": "\(name)", "checkpoint.status": "\(response.status.code)",
                        "checkpoint.error": "\(String(buffer: body))",
                    ]
                )
            }
        } catch {
            // The backend stopped meanwhile (LRU, archive, shutdown): nothing to do.
            outcome = .failed
            metrics.checkpointsFailed.increment()
            self.logger.debug("checkpoint request failed", metadata: ["namespace": "\(name)", "error": "\(error)"])
        }
        return outcome
    }
}
