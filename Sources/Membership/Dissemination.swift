/// The piggyback queue: the newest state of each member that changed recently, each sent a bounded
/// number of times (λ·⌈log2(N+1)⌉), least-sent first. Deterministic: ties go in arrival order.
struct Dissemination: Sendable {
    private var entries: [NodeID: (state: MemberState, sent: Int)] = [:]
    /// `buckets[n]`: ids sent `n` times, in arrival order (entries whose count moved on are skipped).
    private var buckets: [[NodeID]] = [[]]

    var isEmpty: Bool { self.entries.isEmpty }
    var count: Int { self.entries.count }

    /// Queues `state` to be spread, replacing (and resetting the count of) an older state of its member.
    mutating func enqueue(_ state: MemberState) {
        self.entries[state.id] = (state, 0)
        self.buckets[0].append(state.id)
    }

    /// Takes up to `max` states for one message, counting one transmission for each and dropping
    /// those sent `limit` times. (A receiver's own state is sent too: that is how a second process
    /// claiming its id is noticed.)
    mutating func take(max: Int, limit: Int) -> [MemberState] {
        var result: [MemberState] = []
        guard max > 0, !self.entries.isEmpty else { return result }
        var moved: [(NodeID, Int)] = []
        var bucket = 0
        while result.count < max && bucket < self.buckets.count {
            var keep: [NodeID] = []
            for id in self.buckets[bucket] {
                guard let entry = self.entries[id], entry.sent == bucket else { continue }
                if result.count < max {
                    result.append(entry.state)
                    moved.append((id, bucket + 1))
                } else {
                    keep.append(id)
                }
            }
            self.buckets[bucket] = keep
            bucket += 1
        }
        for (id, sent) in moved {
            if sent >= limit {
                self.entries[id] = nil
                continue
            }
            self.entries[id]!.sent = sent
            while self.buckets.count <= sent { self.buckets.append([]) }
            self.buckets[sent].append(id)
        }
        while self.buckets.count > 1 && self.buckets.last!.isEmpty { self.buckets.removeLast() }
        return result
    }
}
