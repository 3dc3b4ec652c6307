import Directory
import Synchronization

/// Coalesces the proposals a member makes concurrently into one log entry (group commit): while a
/// batch is on its way to the leader, the commands proposed meanwhile queue up and leave together
/// as the next entry. Under load a create then costs a fraction of a forward, an entry and an apply
/// transaction instead of one each; alone it costs nothing extra.
///
/// One batch is out at a time, unless the newest one out is older than `stall` (a leader that died
/// or was cut off mid-request): then the queue leaves without it, so one hung forward never holds
/// up every later proposal until its timeout.
///
/// Each caller gets the outcomes of its own commands, in its order; a failed batch fails every
/// caller in it with the same error (an unknown outcome stays unknown for each of them).
final class ProposalBatcher: Sendable {
    typealias Submit = @Sendable ([DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome]

    /// The most commands one entry carries (a caller's larger list still goes as one entry).
    let maxCommands: Int
    let stall: Duration
    private let state = Mutex(State())

    private struct State {
        var queue: [Waiting] = []
        /// When each batch still out left, by ticket.
        var out: [UInt64: ContinuousClock.Instant] = [:]
        var nextTicket: UInt64 = 0
        var checkScheduled = false

        /// Whether the queue may leave now: nothing is out, or everything out looks stuck.
        func mayStart(stall: Duration, now: ContinuousClock.Instant) -> Bool {
            guard !self.queue.isEmpty else { return false }
            guard let newest = self.out.values.max() else { return true }
            return now - newest >= stall
        }
    }

    private struct Waiting {
        let commands: [DirectoryCommand]
        let continuation: CheckedContinuation<Result<[DirectoryOutcome], NodeError>, Never>
    }

    /// Callers waiting for a batch to leave.
    var queued: Int { self.state.withLock { $0.queue.count } }

    init(maxCommands: Int, stall: Duration = .milliseconds(500)) {
        self.maxCommands = max(maxCommands, 1)
        self.stall = stall
    }

    /// Proposes `commands` in the next batch; `submit` sends one batch as one entry (every caller
    /// passes the same function: whoever starts a batch lends it to the callers queued behind).
    func propose(
        _ commands: [DirectoryCommand],
        submit: @escaping Submit
    ) async throws(NodeError) -> [DirectoryOutcome] {
        let result = await withCheckedContinuation { continuation in
            let (starts, schedules) = self.state.withLock { state in
                state.queue.append(Waiting(commands: commands, continuation: continuation))
                if state.mayStart(stall: self.stall, now: .now) { return (true, false) }
                defer { state.checkScheduled = true }
                return (false, !state.checkScheduled)
            }
            if starts {
                Task { await self.send(submit) }
            } else if schedules {
                Task { await self.checkAfterStall(submit) }
            }
        }
        return try result.get()
    }

    /// Sends batches while the queue may leave.
    private func send(_ submit: @escaping Submit) async {
        while let (ticket, batch, watch) = self.take() {
            // Callers left behind a full batch must not wait on it alone if it hangs.
            if watch { Task { await self.checkAfterStall(submit) } }
            await self.deliver(batch, submit)
            let more = self.state.withLock { state in
                state.out[ticket] = nil
                return state.mayStart(stall: self.stall, now: .now)
            }
            guard more else { return }
        }
    }

    /// The next batch (registered as out), unless the queue may not leave now, and whether the
    /// callers it leaves behind need a stall check started.
    private func take() -> (UInt64, [Waiting], Bool)? {
        self.state.withLock { state -> (UInt64, [Waiting], Bool)? in
            guard state.mayStart(stall: self.stall, now: .now) else { return nil }
            var taken = 0
            var count = 0
            while taken < state.queue.count,
                taken == 0 || count + state.queue[taken].commands.count <= self.maxCommands
            {
                count += state.queue[taken].commands.count
                taken += 1
            }
            let batch = Array(state.queue.prefix(taken))
            state.queue.removeFirst(taken)
            let ticket = state.nextTicket
            state.nextTicket += 1
            state.out[ticket] = .now
            let watch = !state.queue.isEmpty && !state.checkScheduled
            if watch { state.checkScheduled = true }
            return (ticket, batch, watch)
        }
    }

    /// Callers queued behind a batch that may be stuck: once it has been out for `stall`, they go
    /// on their own. The check repeats while anything is queued (one check at a time).
    private func checkAfterStall(_ submit: @escaping Submit) async {
        while true {
            try? await Task.sleep(for: self.stall)
            let (starts, again) = self.state.withLock { state in
                state.checkScheduled = !state.queue.isEmpty
                return (state.mayStart(stall: self.stall, now: .now), state.checkScheduled)
            }
            if starts { Task { await self.send(submit) } }
            guard again else { return }
        }
    }

    private func deliver(_ batch: [Waiting], _ submit: Submit) async {
        let commands = batch.flatMap(\.commands)
        let outcomes: [DirectoryOutcome]
        do throws(NodeError) {
            outcomes = try await submit(commands)
            guard outcomes.count == commands.count else {
                throw NodeError(
                    .peerProtocol,
                    "the log answered \(outcomes.count) outcomes for \(commands.count) changes",
                    status: 502
                )
            }
        } catch {
            for waiting in batch { waiting.continuation.resume(returning: .failure(error)) }
            return
        }
        var offset = 0
        for waiting in batch {
            let end = offset + waiting.commands.count
            waiting.continuation.resume(returning: .success(Array(outcomes[offset..<end])))
            offset = end
        }
    }
}
