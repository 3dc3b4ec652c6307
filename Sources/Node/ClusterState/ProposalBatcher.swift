import Directory
import Synchronization

/// Coalesces the proposals a member makes concurrently into one log entry (group commit): while
/// one batch is on its way to the leader, the commands proposed meanwhile queue up and leave
/// together as the next entry. Under load a create then costs a fraction of a forward, an entry
/// and an apply transaction instead of one each; alone it costs nothing extra.
///
/// Each caller gets the outcomes of its own commands, in its order; a failed batch fails every
/// caller in it with the same error (an unknown outcome stays unknown for each of them).
final class ProposalBatcher: Sendable {
    typealias Submit = @Sendable ([DirectoryCommand]) async throws(NodeError) -> [DirectoryOutcome]

    /// The most commands one entry carries (a caller's larger list still goes as one entry).
    let maxCommands: Int
    private let state = Mutex(State())

    private struct State {
        var queue: [Waiting] = []
        var flushing = false
    }

    private struct Waiting {
        let commands: [DirectoryCommand]
        let continuation: CheckedContinuation<Result<[DirectoryOutcome], NodeError>, Never>
    }

    /// Callers waiting for the next batch (not counting the one on its way).
    var queued: Int { self.state.withLock { $0.queue.count } }

    init(maxCommands: Int) {
        self.maxCommands = max(maxCommands, 1)
    }

    /// Proposes `commands` in the next batch; `submit` sends one batch as one entry (every caller
    /// passes the same function: whoever starts a flush lends it to the callers queued behind).
    func propose(
        _ commands: [DirectoryCommand],
        submit: @escaping Submit
    ) async throws(NodeError) -> [DirectoryOutcome] {
        let result = await withCheckedContinuation { continuation in
            let starts = self.state.withLock { state in
                state.queue.append(Waiting(commands: commands, continuation: continuation))
                defer { state.flushing = true }
                return !state.flushing
            }
            if starts { Task { await self.flush(submit) } }
        }
        return try result.get()
    }

    /// Sends batches until the queue is empty; only one runs at a time.
    private func flush(_ submit: Submit) async {
        while true {
            let batch = self.state.withLock { state -> [Waiting] in
                var taken = 0
                var count = 0
                while taken < state.queue.count,
                    taken == 0 || count + state.queue[taken].commands.count <= self.maxCommands
                {
                    count += state.queue[taken].commands.count
                    taken += 1
                }
                if taken == 0 { state.flushing = false }
                defer { state.queue.removeFirst(taken) }
                return Array(state.queue.prefix(taken))
            }
            guard !batch.isEmpty else { return }
            await self.send(batch, submit)
        }
    }

    private func send(_ batch: [Waiting], _ submit: Submit) async {
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
