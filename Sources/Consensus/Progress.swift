/// The leader's view of one follower's log (etcd's tracker.Progress): how far it is known to match
/// (`match`), what to send next (`next`), and how to send it (`state`).
public struct Progress: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// One append per heartbeat interval until the follower's position is found.
        case probe
        /// Position known: appends are pipelined optimistically, up to the inflight window.
        case replicate
        /// The follower needs a snapshot; appends are paused until it is acknowledged.
        case snapshot
    }

    public let id: ReplicaID
    public internal(set) var match: UInt64 = 0
    public internal(set) var next: UInt64
    public internal(set) var state: State = .probe
    /// Heard from since the last check-quorum round.
    public internal(set) var recentActive = false
    /// Index of the snapshot in flight (state `.snapshot`).
    var pendingSnapshot: UInt64 = 0
    /// Ticks spent in `.snapshot`: a snapshot that got lost is resent after an election timeout.
    var snapshotTicks = 0
    /// In `.probe`, an append is outstanding: wait for its answer or the next heartbeat.
    var probeSent = false
    /// Last index of each append in flight, oldest first (state `.replicate`).
    var inflights: [UInt64] = []
    let maxInflight: Int

    init(id: ReplicaID, next: UInt64, maxInflight: Int) {
        self.id = id
        self.next = next
        self.maxInflight = maxInflight
    }

    var inflightFull: Bool { self.inflights.count >= self.maxInflight }

    /// Whether sending an append to this follower should wait.
    var isPaused: Bool {
        switch self.state {
        case .probe: self.probeSent
        case .replicate: self.inflightFull
        case .snapshot: true
        }
    }

    private mutating func reset(_ state: State) {
        self.state = state
        self.probeSent = false
        self.pendingSnapshot = 0
        self.snapshotTicks = 0
        self.inflights.removeAll(keepingCapacity: true)
    }

    mutating func becomeProbe() {
        let afterSnapshot = self.state == .snapshot ? self.pendingSnapshot + 1 : 0
        self.reset(.probe)
        self.next = max(self.match + 1, afterSnapshot)
    }

    mutating func becomeReplicate() {
        self.reset(.replicate)
        self.next = self.match + 1
    }

    mutating func becomeSnapshot(_ index: UInt64) {
        self.reset(.snapshot)
        self.pendingSnapshot = index
    }

    /// An acknowledgement through `index`; false if it is stale (tells nothing new).
    mutating func maybeUpdate(_ index: UInt64) -> Bool {
        var updated = false
        if index > self.match {
            self.match = index
            self.probeSent = false
            updated = true
        }
        self.next = max(self.next, index + 1)
        return updated
    }

    /// A rejection of the append after `rejected`; `hint` is the highest index that may match.
    /// False if the rejection is stale (answers an append we no longer care about).
    mutating func maybeDecrease(rejected: UInt64, hint: UInt64) -> Bool {
        if self.state == .replicate {
            guard rejected > self.match else { return false }
            self.next = self.match + 1
            return true
        }
        guard self.next - 1 == rejected else { return false }
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.probeSent = false
        return true
    }

    /// Records an append whose last entry is `lastIndex` (or an empty probe).
    mutating func sent(lastIndex: UInt64?) {
        switch self.state {
        case .replicate:
            if let lastIndex {
                self.next = lastIndex + 1
                self.inflights.append(lastIndex)
            }
        case .probe:
            self.probeSent = true
        case .snapshot:
            break
        }
    }

    /// Frees the inflight slots of appends acknowledged through `index`.
    mutating func freeInflights(through index: UInt64) {
        let count = self.inflights.prefix { $0 <= index }.count
        self.inflights.removeFirst(count)
    }
}
