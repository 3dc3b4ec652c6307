import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// Asks built-in backends to checkpoint (see `CheckpointPolicy` for when): every `interval` it reads
/// the WAL size of each running namespace and sends `POST /_turso/checkpoint` to those that are due.
/// An external tursodb is never asked (it has no such endpoint and never checkpoints).
actor CheckpointScheduler {
    static let interval: Duration = .milliseconds(250)

    private var policy: CheckpointPolicy
    private let service: NamespaceService
    private let client: HTTPClient
    private let logger: Logger
    private let origin = ContinuousClock.now

    init(service: NamespaceService, client: HTTPClient, logger: Logger) {
        self.policy = CheckpointPolicy(
            walLimit: service.configuration.syncWALLimit,
            idleAfter: service.configuration.checkpointWhenIdleFor
        )
        self.service = service
        self.client = client
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
        let metrics = self.service.metrics
        let started = ContinuousClock.now
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/_turso/checkpoint")
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
        self.policy.finished(name, outcome)
    }
}
