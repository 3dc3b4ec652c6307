import CSQLite
import Foundation
import NIOHTTP1

extension SyncService {
    /// The node asks for a checkpoint here (with the backend secret, like every request).
    static let checkpointPath = "/_turso/checkpoint"
    /// How long a checkpoint waits for requests and transactions to drain before giving up for now.
    static let defaultCheckpointWait: Duration = .seconds(2)

    enum CheckpointOutcome: Sendable {
        case done(PageSource.CheckpointResult)
        /// The barrier was not reached in time (open transactions, a pinned bootstrap): retry later.
        case busy(String)
        case failed(String)
    }

    /// Retires the current WAL generation into the change history and truncates the WAL, once no
    /// request is in flight and no transaction is open (new ones wait meanwhile). Only ever a
    /// `wal_checkpoint(TRUNCATE)`: a partial checkpoint's extent depends on readers and could not be
    /// reproduced on another copy of the files.
    func checkpoint(
        waitingAtMost bound: Duration = SyncService.defaultCheckpointWait,
        expectedCommittedEnd: Int? = nil
    ) async -> CheckpointOutcome {
        guard self.barrier.close() else { return .busy("a checkpoint is already running") }
        defer { self.barrier.open() }
        let deadline =
            DispatchTime.now().uptimeNanoseconds + UInt64(bound.components.seconds) * 1_000_000_000
            + UInt64(bound.components.attoseconds / 1_000_000_000)
        while case .waiting(let pinnedUntil) = self.barrier.tryExclusive(isQuiet: { !self.streams.anyInTransaction }) {
            // Requests wait while the barrier is closed: give up at once when a pinned bootstrap
            // outlasts the bound anyway.
            if let pinnedUntil, pinnedUntil > deadline {
                return .busy("a chunked bootstrap is reading a pinned revision; retry later")
            }
            guard DispatchTime.now().uptimeNanoseconds < deadline else {
                return .busy("requests or transactions did not finish within \(bound); retry later")
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        let started = ContinuousClock.now
        do {
            let result = try await self.threads.runIfActive { () throws -> PageSource.CheckpointResult in
                try self.pages.checkpoint(
                    retention: self.configuration.historyRetention,
                    nowMilliseconds: UInt64(Date().timeIntervalSince1970 * 1000),
                    expectedCommittedEnd: expectedCommittedEnd,
                    truncateWAL: { self.truncateWAL() }
                )
            }
            let elapsed = ContinuousClock.now - started
            self.logger.info(
                "checkpoint",
                metadata: [
                    "sync.retired_commits": "\(result.retiredCommits)", "sync.wal_bytes": "\(result.walBytes)",
                    "sync.history_bytes": "\(result.historyBytes)", "sync.revision": "\(result.revision)",
                    "sync.duration_ms":
                        "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
                ]
            )
            return .done(result)
        } catch let error as PullError {
            self.logger.warning("checkpoint did not complete", metadata: ["sync.error": "\(error.message)"])
            return error.status == 409 ? .busy(error.message) : .failed(error.message)
        } catch {
            return .failed("server is shutting down")
        }
    }

    /// `sqlite3_wal_checkpoint_v2(TRUNCATE)` on the anchor connection (the C API: the SQL guard that
    /// refuses a client's `PRAGMA wal_checkpoint` applies to statements only). Nil on success.
    private func truncateWAL() -> String? {
        var frames: Int32 = 0
        var checkpointed: Int32 = 0
        // This process's readers and writers are gone (the barrier); another process's would make a
        // TRUNCATE checkpoint wait, and every request with it: give up quickly instead.
        sqlite3_busy_timeout(self.anchorHandle, 100)
        let code = sqlite3_wal_checkpoint_v2(self.anchorHandle, nil, SQLITE_CHECKPOINT_TRUNCATE, &frames, &checkpointed)
        guard code == SQLITE_OK else {
            return "wal_checkpoint(TRUNCATE) failed: \(String(cString: sqlite3_errmsg(self.anchorHandle)))"
        }
        return nil
    }

    /// `POST /_turso/checkpoint[?wait_ms=n][&wal_end=n]` → `{"retired_commits", "wal_bytes",
    /// "history_bytes", "revision"}`, 409 `CHECKPOINT_BUSY` when the barrier was not reached or the
    /// WAL's committed end is not `wal_end` (the end the node shipped to followers): retry later.
    func checkpointRequest(_ request: HTTPRequest) async -> HTTPResponse {
        var bound = Self.defaultCheckpointWait
        var expectedEnd: Int?
        if let query = request.path.split(separator: "?", maxSplits: 1).dropFirst().first {
            let parameters = query.split(separator: "&")
            if let wait = parameters.first(where: { $0.hasPrefix("wait_ms=") }),
                let milliseconds = Int(wait.dropFirst("wait_ms=".count)), (0...60_000).contains(milliseconds)
            {
                bound = .milliseconds(milliseconds)
            }
            if let end = parameters.first(where: { $0.hasPrefix("wal_end=") }) {
                guard let value = Int(end.dropFirst("wal_end=".count)), value >= 0 else {
                    return .error(.badRequest, "wal_end must be a byte offset", code: "BAD_REQUEST")
                }
                expectedEnd = value
            }
        }
        switch await self.checkpoint(waitingAtMost: bound, expectedCommittedEnd: expectedEnd) {
        case .done(let result):
            let body =
                "{\"retired_commits\":\(result.retiredCommits),\"wal_bytes\":\(result.walBytes),"
                + "\"history_bytes\":\(result.historyBytes),\"revision\":\"\(result.revision)\"}"
            return .json(.ok, Array(body.utf8))
        case .busy(let message):
            return .error(.conflict, message, code: "CHECKPOINT_BUSY")
        case .failed(let message):
            return .error(.internalServerError, message, code: "CHECKPOINT_FAILED")
        }
    }
}
