/// A message between replicas. Every message carries the sender's term (for `preVote` the term
/// the sender would campaign in): a higher term makes the receiver follow, a lower one is stale.
public struct RaftMessage: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// "Would you vote for me in `term`?" Changes nobody's term, so a partitioned replica that
        /// keeps timing out cannot disrupt a healthy leader when it rejoins.
        case preVote(lastLogIndex: UInt64, lastLogTerm: UInt64)
        case preVoteResponse(granted: Bool)
        case vote(lastLogIndex: UInt64, lastLogTerm: UInt64, transfer: Bool)
        case voteResponse(granted: Bool)
        /// Entries following `(prevLogIndex, prevLogTerm)`; may be empty (a probe).
        case append(prevLogIndex: UInt64, prevLogTerm: UInt64, entries: [LogEntry], commit: UInt64)
        /// The follower's log matches the leader's through `index`.
        case appendAccepted(index: UInt64)
        /// The follower has no entry matching `(rejectedIndex, term)`; `hintIndex`/`hintTerm` is its
        /// largest entry whose term is at most the leader's term there (fast backtracking).
        case appendRejected(rejectedIndex: UInt64, hintIndex: UInt64, hintTerm: UInt64)
        /// Keeps followers from campaigning; `commit` is capped at what the follower is known to hold;
        /// `readSequence` lets a response confirm pending ReadIndex requests.
        case heartbeat(commit: UInt64, readSequence: UInt64)
        case heartbeatResponse(readSequence: UInt64)
        case snapshot(Snapshot)
        /// Leader transfer: "campaign now, skipping pre-vote and the lease check".
        case timeoutNow
    }

    public var from: ReplicaID
    public var to: ReplicaID
    public var term: UInt64
    public var kind: Kind

    public init(from: ReplicaID, to: ReplicaID, term: UInt64, kind: Kind) {
        self.from = from
        self.to = to
        self.term = term
        self.kind = kind
    }

    public var description: String { "\(self.from)->\(self.to) t\(self.term) \(self.kind)" }
}
