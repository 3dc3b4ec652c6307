/// The holder's side of one namespace handoff, as a pure state machine: each input (what the last
/// action found) returns the next action. `Cluster.handOff` performs the actions; the simulation in
/// the tests drives the same machine through lost messages and crashes.
///
/// The order is what keeps a namespace single-writer: the target copies while this node serves;
/// then this node fences (no new request starts), drains, stops the backend and records the handoff
/// durably (sealed: the files are final and the record survives a crash); only then does the target
/// verify and register. This node serves again only when it knows the target did not take it.
struct HandoffStateMachine: Sendable, Equatable {
    enum Outcome: Sendable, Equatable {
        /// The target holds the namespace: forget it here, send waiting requests there.
        case moved
        /// The target refused or certainly did not register it: clear the record of the handoff and
        /// serve it here again.
        case kept
        /// Stopped before sealing (the target could not copy, the namespace went away, someone else
        /// fenced it): nothing changed. `unfence` when this handoff holds the fence.
        case abandoned(unfence: Bool)
        /// The target did not say whether it registered it: keep not serving it here until it does.
        case unresolved
    }

    enum Action: Sendable, Equatable {
        /// Ask the target to copy the files (or what it lacks) while this node still serves.
        case precopy
        /// Fence the namespace and wait (bounded) for its requests in flight.
        case fence
        /// Stop the backend, digest the files and record the handoff durably.
        case seal
        /// Ask the target to copy the tail, verify the digests and register the namespace.
        case commit
        /// Ask the target whether it holds the namespace.
        case askHeld
        case finish(Outcome)
    }

    /// What the target answered to `commit`.
    enum CommitAnswer: Sendable, Equatable {
        case accepted
        /// A definite no (a 4xx): it did not register the namespace.
        case refused
        /// No answer or a failure that may have happened after it registered the namespace.
        case noAnswer
    }

    enum State: Sendable, Equatable {
        case idle
        case precopying
        case fencing
        case sealing
        case committing
        case confirming(attempts: Int)
        case finished(Outcome)
    }

    /// How many times `askHeld` is tried before the outcome is left unresolved.
    let maxConfirmations: Int
    private(set) var state = State.idle

    init(maxConfirmations: Int = 5) {
        self.maxConfirmations = maxConfirmations
    }

    mutating func start() -> Action {
        precondition(self.state == .idle)
        self.state = .precopying
        return .precopy
    }

    mutating func precopied(_ succeeded: Bool) -> Action {
        precondition(self.state == .precopying)
        guard succeeded else { return self.finish(.abandoned(unfence: false)) }
        self.state = .fencing
        return .fence
    }

    /// `claimed`: this handoff holds the fence (nobody else fenced it); `stillHeld`: the namespace is
    /// still registered here once its requests drained.
    mutating func fenced(claimed: Bool, stillHeld: Bool) -> Action {
        precondition(self.state == .fencing)
        guard claimed else { return self.finish(.abandoned(unfence: false)) }
        guard stillHeld else { return self.finish(.abandoned(unfence: true)) }
        self.state = .sealing
        return .seal
    }

    mutating func sealed(_ succeeded: Bool) -> Action {
        precondition(self.state == .sealing)
        guard succeeded else { return self.finish(.kept) }
        self.state = .committing
        return .commit
    }

    mutating func committed(_ answer: CommitAnswer) -> Action {
        precondition(self.state == .committing)
        switch answer {
        case .accepted: return self.finish(.moved)
        case .refused: return self.finish(.kept)
        case .noAnswer:
            self.state = .confirming(attempts: 1)
            return .askHeld
        }
    }

    /// `held`: the target's answer, nil when it did not answer.
    mutating func heldAnswered(_ held: Bool?) -> Action {
        guard case .confirming(let attempts) = self.state else { preconditionFailure("not confirming") }
        switch held {
        case true?: return self.finish(.moved)
        case false?: return self.finish(.kept)
        case nil:
            guard attempts < self.maxConfirmations else { return self.finish(.unresolved) }
            self.state = .confirming(attempts: attempts + 1)
            return .askHeld
        }
    }

    private mutating func finish(_ outcome: Outcome) -> Action {
        self.state = .finished(outcome)
        return .finish(outcome)
    }
}
