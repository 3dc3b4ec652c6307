import Consensus

/// Keeps the cluster log's voter set healthy, in the shape of Consul's autopilot: the Raft leader
/// runs it on every tick with what gossip and replication tell it, and proposes the one change it
/// returns (single-server changes, one at a time). Pure: no clock, no I/O; `now` is passed in.
///
/// Rules:
/// - a cluster of one or two members gets no automatic decision (two voters cannot lose one);
/// - a voter dead for `deadVoterGrace` is removed, never the leader, and never when fewer than
///   `minimumQuorum` voters would remain; a suspect or briefly dead voter is left alone;
/// - below `targetVoters`, the learner that has been alive and caught up (within `maximumLag` of
///   the commit index) for `stabilization` is promoted: witnesses first, then the zone with the
///   fewest voters, then the most caught up, then the lowest id;
/// - above `targetVoters` for `stabilization`, one voter is demoted (an unhealthy one first, then
///   one from the zone with the most voters), never the leader.
public struct Autopilot: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Voters to keep (odd, 1-5; the node validates `TURSO_VOTERS`).
        public var targetVoters = 3
        /// How long a learner must be alive and caught up before it is promoted, and how long the
        /// voter count must stay above target before one is demoted.
        public var stabilization: Duration = .seconds(10)
        /// How long a voter must be dead before it is removed.
        public var deadVoterGrace: Duration = .seconds(60)
        /// Automatic removals never leave fewer voters than this.
        public var minimumQuorum = 2
        /// Entries behind the commit index that still count as caught up.
        public var maximumLag: UInt64 = 1000

        public init() {}
    }

    public enum Health: Sendable, Equatable {
        case alive
        /// Gossip suspects it; not yet declared dead.
        case suspect
        /// Declared dead by gossip at `since`.
        case dead(since: Duration)
    }

    /// One member of the log as the leader sees it.
    public struct Member: Sendable, Equatable {
        public var id: ReplicaID
        public var zone: String
        public var isVoter: Bool
        /// `TURSO_ROLE=witness`: a voter that holds no namespaces.
        public var isWitness: Bool
        public var health: Health
        /// The highest log index known to be on it.
        public var matchIndex: UInt64

        public init(id: ReplicaID, zone: String, isVoter: Bool, isWitness: Bool, health: Health, matchIndex: UInt64) {
            self.id = id
            self.zone = zone
            self.isVoter = isVoter
            self.isWitness = isWitness
            self.health = health
            self.matchIndex = matchIndex
        }
    }

    public enum Action: Sendable, Equatable {
        case promote(ReplicaID)
        /// Take a dead voter out of the configuration.
        case removeVoter(ReplicaID)
        /// Make a voter a learner again (the shell removes it and adds it back as a learner).
        case demote(ReplicaID)
    }

    public let configuration: Configuration
    /// Since when each member has been alive and caught up (absent while it is not).
    private var healthySince: [UInt64: Duration] = [:]
    /// Since when there have been more voters than the target.
    private var aboveTargetSince: Duration?

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// The change to propose now, if any. `pendingChange`: a configuration change is proposed and
    /// not yet applied (nothing else may be proposed meanwhile).
    public mutating func step(
        members: [Member],
        leader: ReplicaID,
        commitIndex: UInt64,
        pendingChange: Bool,
        now: Duration
    ) -> Action? {
        self.observe(members, commitIndex: commitIndex, now: now)
        guard !pendingChange, members.count > 2 else { return nil }
        let voters = members.filter(\.isVoter)
        if let removal = self.deadVoterToRemove(voters, leader: leader, now: now) { return .removeVoter(removal) }
        if voters.count < self.configuration.targetVoters, let learner = self.learnerToPromote(members, now: now) {
            return .promote(learner)
        }
        if voters.count > self.configuration.targetVoters, let since = self.aboveTargetSince,
            now - since >= self.configuration.stabilization
        {
            return self.voterToDemote(voters, leader: leader).map(Action.demote)
        }
        return nil
    }

    private mutating func observe(_ members: [Member], commitIndex: UInt64, now: Duration) {
        var next: [UInt64: Duration] = [:]
        for member in members where member.health == .alive && self.isCaughtUp(member, commitIndex: commitIndex) {
            next[member.id.rawValue] = self.healthySince[member.id.rawValue] ?? now
        }
        self.healthySince = next
        if members.filter(\.isVoter).count > self.configuration.targetVoters {
            self.aboveTargetSince = self.aboveTargetSince ?? now
        } else {
            self.aboveTargetSince = nil
        }
    }

    private func isCaughtUp(_ member: Member, commitIndex: UInt64) -> Bool {
        member.matchIndex + self.configuration.maximumLag >= commitIndex
    }

    private func deadVoterToRemove(_ voters: [Member], leader: ReplicaID, now: Duration) -> ReplicaID? {
        guard voters.count - 1 >= self.configuration.minimumQuorum else { return nil }
        let dead = voters.filter { voter in
            guard voter.id != leader, case .dead(let since) = voter.health else { return false }
            return now - since >= self.configuration.deadVoterGrace
        }
        // Removing it must leave a majority of the remaining voters alive, or the log stops anyway.
        let remaining = voters.count - 1
        let alive = voters.filter { $0.health == .alive }.count
        guard alive >= remaining / 2 + 1 else { return nil }
        return dead.min { $0.id < $1.id }?.id
    }

    private static func votersByZone(_ members: [Member]) -> [String: Int] {
        members.filter(\.isVoter).reduce(into: [:]) { $0[$1.zone, default: 0] += 1 }
    }

    private func learnerToPromote(_ members: [Member], now: Duration) -> ReplicaID? {
        let votersByZone = Self.votersByZone(members)
        let stable = members.filter { member in
            guard !member.isVoter, let since = self.healthySince[member.id.rawValue] else { return false }
            return now - since >= self.configuration.stabilization
        }
        return stable.min { a, b in
            let keyA = (a.isWitness ? 0 : 1, votersByZone[a.zone] ?? 0)
            let keyB = (b.isWitness ? 0 : 1, votersByZone[b.zone] ?? 0)
            if keyA != keyB { return keyA < keyB }
            if a.matchIndex != b.matchIndex { return a.matchIndex > b.matchIndex }
            return a.id < b.id
        }?.id
    }

    private func voterToDemote(_ voters: [Member], leader: ReplicaID) -> ReplicaID? {
        let votersByZone = Self.votersByZone(voters)
        return voters.filter { $0.id != leader }.min { a, b in
            let keyA = (a.health == .alive ? 1 : 0, a.isWitness ? 1 : 0, -(votersByZone[a.zone] ?? 0))
            let keyB = (b.health == .alive ? 1 : 0, b.isWitness ? 1 : 0, -(votersByZone[b.zone] ?? 0))
            if keyA != keyB { return keyA < keyB }
            return a.id > b.id
        }?.id
    }
}
