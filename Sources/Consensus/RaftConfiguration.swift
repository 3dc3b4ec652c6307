/// Tunables of one replica, validated in one place (`validate()`).
public struct RaftConfiguration: Sendable, Equatable {
    /// This replica.
    public var id: ReplicaID
    /// A follower that hears nothing from a leader for a random number of ticks in
    /// `electionTicks..<2*electionTicks` campaigns; a check-quorum leader steps down after
    /// `electionTicks` without hearing from a quorum.
    public var electionTicks: Int = 10
    /// The leader sends heartbeats every `heartbeatTicks`; must be well below `electionTicks`.
    public var heartbeatTicks: Int = 1
    /// Upper bound on the entry bytes in one append (at least one entry is always sent).
    public var maxBytesPerMessage: Int = 1 << 20
    /// Pipelining window: appends in flight to one follower in replicate state.
    public var maxInflightMessages: Int = 256
    /// Campaign with a pre-vote round first (Ongaro §9.6).
    public var preVote: Bool = true
    /// Leaders step down without a quorum of recent contact; followers that heard from a leader
    /// within an election timeout ignore vote requests (leader lease against disruption).
    public var checkQuorum: Bool = true
    /// Seeds the randomized election timeout.
    public var randomSeed: UInt64 = 0
    /// Test-only deliberate bugs, to prove that the simulation's checks detect them.
    package var mutations: Mutations = []

    public init(id: ReplicaID, randomSeed: UInt64 = 0) {
        self.id = id
        self.randomSeed = randomSeed
    }

    public func validate() throws(RaftError) {
        guard self.heartbeatTicks > 0 else {
            throw RaftError(.invalidConfiguration, "heartbeatTicks must be positive")
        }
        guard self.electionTicks > self.heartbeatTicks else {
            throw RaftError(.invalidConfiguration, "electionTicks must exceed heartbeatTicks")
        }
        guard self.maxBytesPerMessage > 0 else {
            throw RaftError(.invalidConfiguration, "maxBytesPerMessage must be positive")
        }
        guard self.maxInflightMessages > 0 else {
            throw RaftError(.invalidConfiguration, "maxInflightMessages must be positive")
        }
    }

    /// Deliberate protocol bugs for mutation testing. Never set outside tests.
    package struct Mutations: OptionSet, Sendable, Equatable {
        package let rawValue: UInt8
        package init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Figure 8 disabled: the leader commits any entry stored on a quorum, whatever its term.
        package static let commitOldTermEntries = Mutations(rawValue: 1 << 0)
        /// Votes are granted without checking that the candidate's log is at least as up to date.
        package static let grantVoteWithoutLogCheck = Mutations(rawValue: 1 << 1)
        /// A new leader does not append its no-op entry (makes figure 8 reachable faster).
        package static let skipLeaderNoop = Mutations(rawValue: 1 << 2)
        /// ReadIndex answers at once, without confirming leadership with a heartbeat quorum.
        package static let readWithoutHeartbeatQuorum = Mutations(rawValue: 1 << 3)
        /// A voter added directly is assumed to hold the leader's whole log (etcd starts it at
        /// match 0): it counts towards commits before it has anything.
        package static let addedVoterStartsCaughtUp = Mutations(rawValue: 1 << 4)
    }
}
