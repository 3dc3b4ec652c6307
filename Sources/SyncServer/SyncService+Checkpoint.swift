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
        if let busy = await self.drain(waitingAtMost: bound) { return busy }
        return await self.retire(expectedCommittedEnd: expectedCommittedEnd)
    }

    /// The first half of a checkpoint for a namespace with followers: once nothing is in flight,
    /// the barrier stays held (every request waits) and the WAL's committed end is returned, for
    /// the node to ship to its followers before `finishHeldCheckpoint` retires exactly that. The
    /// barrier opens again after `hold` whatever happens, so a node that never comes back stalls
    /// requests for that long at most.
    func holdCheckpoint(
        waitingAtMost bound: Duration,
        hold: Duration
    ) async -> Result<(token: UInt64, end: Int), CheckpointHoldError> {
        guard self.barrier.close() else { return .failure(.init(message: "a checkpoint is already running")) }
        if let busy = await self.drain(waitingAtMost: bound) {
            self.barrier.open()
            guard case .busy(let message) = busy else { return .failure(.init(message: "")) }
            return .failure(.init(message: message))
        }
        let token = UInt64.random(in: 1...UInt64.max)
        self.heldCheckpoint.withLock { $0 = token }
        let end = self.pages.committedEnd()
        Task {
            try? await Task.sleep(for: hold)
            self.releaseHeldCheckpoint(token)
        }
        return .success((token, end))
    }

    struct CheckpointHoldError: Error {
        var message: String
    }

    /// Retires the WAL up to `end` under the barrier `token` holds, and opens it. The token is
    /// claimed first, so the hold's timer cannot open the barrier while the checkpoint runs.
    func finishHeldCheckpoint(_ token: UInt64, end: Int) async -> CheckpointOutcome {
        let claimed = self.heldCheckpoint.withLock { held -> Bool in
            guard held == token else { return false }
            held = nil
            return true
        }
        guard claimed else { return .busy("the held checkpoint expired or was released; retry") }
        defer { self.barrier.open() }
        return await self.retire(expectedCommittedEnd: end)
    }

    /// Opens the barrier a held checkpoint keeps (once: a later token is left alone).
    func releaseHeldCheckpoint(_ token: UInt64) {
        let held = self.heldCheckpoint.withLock { held -> Bool in
            guard held == token else { return false }
            held = nil
            return true
        }
        if held { self.barrier.open() }
    }

    /// Waits (bounded) for the barrier to be held exclusively; the busy outcome when it was not.
    private func drain(waitingAtMost bound: Duration) async -> CheckpointOutcome? {
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
        return nil
    }

    /// The checkpoint itself, under the barrier held exclusively.
    private func retire(expectedCommittedEnd: Int?) async -> CheckpointOutcome {
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
    /// WAL's committed end is not `wal_end`: retry later. In two halves for a namespace with
    /// followers: `?hold_ms=n` holds the barrier and answers `{"held", "wal_end"}`; then
    /// `?held=<token>&wal_end=n` retires exactly that end, or `?release=<token>` gives up.
    func checkpointRequest(_ request: HTTPRequest) async -> HTTPResponse {
        var parameters: [Substring: Substring] = [:]
        if let query = request.path.split(separator: "?", maxSplits: 1).dropFirst().first {
            for pair in query.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                parameters[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
        }
        func integer(_ key: Substring, _ range: ClosedRange<Int>) -> Int?? {
            guard let text = parameters[key] else { return .some(nil) }
            guard let value = Int(text), range.contains(value) else { return nil }
            return .some(value)
        }
        guard let wait = integer("wait_ms", 0...60_000), let end = integer("wal_end", 0...Int.max),
            let hold = integer("hold_ms", 1...60_000)
        else {
            return .error(.badRequest, "wait_ms, hold_ms and wal_end must be integers in range", code: "BAD_REQUEST")
        }
        let bound = wait.map { Duration.milliseconds($0) } ?? Self.defaultCheckpointWait
        if let text = parameters["release"] {
            guard let token = UInt64(text) else {
                return .error(.badRequest, "release names a token", code: "BAD_REQUEST")
            }
            self.releaseHeldCheckpoint(token)
            return .json(.ok, Array("{}".utf8))
        }
        if let hold {
            switch await self.holdCheckpoint(waitingAtMost: bound, hold: .milliseconds(hold)) {
            case .success(let held):
                return .json(.ok, Array("{\"held\":\"\(held.token)\",\"wal_end\":\(held.end)}".utf8))
            case .failure(let error):
                return .error(.conflict, error.message, code: "CHECKPOINT_BUSY")
            }
        }
        let outcome: CheckpointOutcome
        if let text = parameters["held"] {
            guard let token = UInt64(text), let end else {
                return .error(.badRequest, "held names a token and needs wal_end", code: "BAD_REQUEST")
            }
            outcome = await self.finishHeldCheckpoint(token, end: end)
        } else {
            outcome = await self.checkpoint(waitingAtMost: bound, expectedCommittedEnd: end)
        }
        switch outcome {
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
