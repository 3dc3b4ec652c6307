/// Leader election: pre-vote, vote, the up-to-date check, and check-quorum.
extension RaftNode {
    enum CampaignKind {
        /// Ask first, without touching any term (when pre-vote is on).
        case preElection
        case election
        /// Asked to by the leader (`timeoutNow`): no pre-vote, and voters skip the lease check.
        case transfer
    }

    /// Starts a (pre-)campaign.
    mutating func campaign(_ kind: CampaignKind) {
        guard self.isPromotable else { return }
        let preVote = kind == .preElection
        let transfer = kind == .transfer
        let campaignTerm: UInt64
        if preVote {
            self.role = .preCandidate
            self.leader = nil
            self.resetTimers()
            self.progress = []
            self.pendingReads = []
            self.readsAwaitingCommit = []
            campaignTerm = self.term + 1
        } else {
            self.becomeFollower(term: self.term + 1, leader: nil)
            self.role = .candidate
            self.vote = self.id
            campaignTerm = self.term
        }
        self.votes = []
        // The vote for ourselves counts at once in a pre-vote (no state changes), but in an
        // election only once the new term and vote are durable (`advance`), as in etcd: a single
        // voter winning on its own unpersisted vote could crash, restart in the old term, and lead
        // the same term again with a different entry at a position `propose` already returned.
        if preVote { self.handleVoteResponse(from: self.id, granted: true) }
        guard self.role == .preCandidate || self.role == .candidate else { return }
        for voter in self.configuration.voters where voter != self.id {
            let kind: RaftMessage.Kind =
                preVote
                ? .preVote(lastLogIndex: self.log.lastIndex, lastLogTerm: self.log.lastTerm)
                : .vote(lastLogIndex: self.log.lastIndex, lastLogTerm: self.log.lastTerm, transfer: transfer)
            self.send(to: voter, term: campaignTerm, kind)
        }
    }

    /// Grants a (pre-)vote to a candidate whose log is at least as up to date as ours, if we have
    /// not voted for someone else in this term (for a pre-vote: if its term is ahead of ours).
    /// Learners and non-members answer too: the candidate counts only the voters of its own
    /// configuration, which may already list us (a promotion we have not received yet).
    mutating func handleVoteRequest(_ message: RaftMessage, lastIndex: UInt64, lastTerm: UInt64, preVote: Bool) {
        let canVote =
            self.vote == message.from || (self.vote == nil && self.leader == nil)
            || (preVote && message.term > self.term)
        let upToDate =
            self.settings.mutations.contains(.grantVoteWithoutLogCheck)
            || self.log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
        if canVote && upToDate {
            if preVote {
                self.send(to: message.from, term: message.term, .preVoteResponse(granted: true))
            } else {
                self.electionElapsed = 0
                self.vote = message.from
                self.send(to: message.from, .voteResponse(granted: true))
            }
        } else {
            self.send(to: message.from, preVote ? .preVoteResponse(granted: false) : .voteResponse(granted: false))
        }
    }

    /// Tallies one answer; wins or loses the (pre-)campaign once a quorum decides it.
    mutating func handleVoteResponse(from id: ReplicaID, granted: Bool) {
        if !self.votes.contains(where: { $0.id == id }) { self.votes.append((id, granted)) }
        let configuration = self.configuration
        let granted = self.votes.filter { $0.granted && configuration.isVoter($0.id) }.count
        let rejected = self.votes.filter { !$0.granted && configuration.isVoter($0.id) }.count
        if granted >= configuration.quorum {
            if self.role == .preCandidate {
                self.campaign(.election)  // the pre-vote succeeded: campaign for real
            } else {
                self.becomeLeader()
            }
        } else if rejected > configuration.voters.count - configuration.quorum {
            self.becomeFollower(term: self.term, leader: nil)
        }
    }

    mutating func becomeLeader() {
        self.role = .leader
        self.leader = self.id
        self.resetTimers()
        self.votes = []
        self.progress = []
        self.syncProgress()
        for index in self.progress.indices {
            self.progress[index].recentActive = true
        }
        if !self.settings.mutations.contains(.skipLeaderNoop) {
            self.appendAsLeader([.empty])
        }
        self.acknowledge(from: self.id, through: self.log.stableIndex)
        self.broadcastAppend()
    }

    /// Check-quorum: were a quorum of voters (counting ourselves) heard from during the last
    /// election timeout? Resets the activity marks for the next round.
    mutating func checkQuorumActive() -> Bool {
        let configuration = self.configuration
        var active = 0
        for index in self.progress.indices {
            let id = self.progress[index].id
            if configuration.isVoter(id) && (id == self.id || self.progress[index].recentActive) { active += 1 }
            self.progress[index].recentActive = id == self.id
        }
        return active >= configuration.quorum
    }
}
