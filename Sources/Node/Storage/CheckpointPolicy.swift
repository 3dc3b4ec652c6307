/// When the node asks a built-in backend to checkpoint its WAL. Pure: the scheduler feeds it WAL
/// sizes and idle times and sends the requests it decides on.
///
/// Rules: a WAL at or past `walLimit` is checkpointed (a soft limit: it is checked every tick); a
/// namespace with no request in flight for `idleAfter` and a non-empty WAL is checkpointed once, so
/// idle namespaces restart fast; an attempt that did not complete (busy barrier, failure) is not
/// repeated for `retryAfter`; one attempt per namespace at a time.
struct CheckpointPolicy: Sendable {
    enum Reason: String, Sendable {
        case walLimit = "wal_limit"
        case idle
    }

    enum Outcome: Sendable {
        case done(walBytesAfter: Int)
        case deferred
        case failed
    }

    var walLimit: Int
    var idleAfter: Duration
    var retryAfter: Duration = .seconds(5)

    private struct Entry: Sendable {
        var running = false
        var lastAttempt: Duration?
        var lastCompleted = false
        /// The WAL size right after the last completed checkpoint.
        var walBytesAfter = 0
    }

    private var entries: [String: Entry] = [:]

    init(walLimit: Int, idleAfter: Duration) {
        self.walLimit = walLimit
        self.idleAfter = idleAfter
    }

    /// Whether `name` should be checkpointed now; marks the attempt as started when it should.
    mutating func due(_ name: String, walBytes: Int, idleFor: Duration?, now: Duration) -> Reason? {
        var entry = self.entries[name] ?? Entry()
        guard !entry.running else { return nil }
        if let last = entry.lastAttempt, !entry.lastCompleted, now - last < self.retryAfter { return nil }
        let reason: Reason
        if walBytes >= self.walLimit {
            reason = .walLimit
        } else if let idleFor, idleFor >= self.idleAfter, walBytes > 0,
            !(entry.lastCompleted && walBytes <= entry.walBytesAfter)
        {
            reason = .idle
        } else {
            return nil
        }
        entry.running = true
        entry.lastAttempt = now
        self.entries[name] = entry
        return reason
    }

    mutating func finished(_ name: String, _ outcome: Outcome) {
        guard var entry = self.entries[name] else { return }
        entry.running = false
        switch outcome {
        case .done(let after):
            entry.lastCompleted = true
            entry.walBytesAfter = after
        case .deferred, .failed:
            entry.lastCompleted = false
        }
        self.entries[name] = entry
    }

    /// Forgets namespaces whose backends are no longer running.
    mutating func retain(_ running: Set<String>) {
        self.entries = self.entries.filter { running.contains($0.key) || $0.value.running }
    }
}
