/// What members send each other. Every envelope carries the sender's own current state and some
/// piggybacked updates (dissemination); the message says what else it is.
public enum MembershipMessage: Hashable, Sendable {
    /// Direct probe. MUST be answered with `.ack(sequence)`.
    case ping(sequence: UInt64)
    case ack(sequence: UInt64)
    /// Asks the receiver to probe `target` on the sender's behalf (indirect probe).
    case pingRequest(sequence: UInt64, target: NodeID)
    /// The relay reached the target for the origin's `sequence`.
    case indirectAck(sequence: UInt64)
    /// The relay did not reach the target in time (Lifeguard: proves the relay, and us, are alive).
    case nack(sequence: UInt64)
    /// Nothing but the piggybacked updates (the dissemination fan-out).
    case gossip
    /// Push-pull, step 1: the sender's digest of every member it knows.
    case syncRequest(digest: [MemberDigest])
    /// Step 2: states the requester lacks, and the responder's own digest.
    case syncResponse(states: [MemberState], digest: [MemberDigest])
    /// Step 3: states the responder lacks.
    case syncDelta(states: [MemberState])
}

public struct MembershipEnvelope: Hashable, Sendable {
    /// The sender's own state.
    public var sender: MemberState
    public var message: MembershipMessage
    /// Piggybacked member states, least-transmitted first.
    public var updates: [MemberState]

    public init(sender: MemberState, message: MembershipMessage, updates: [MemberState]) {
        self.sender = sender
        self.message = message
        self.updates = updates
    }
}

/// Where to send an envelope: a known member (with its current address) or a bare address (a seed
/// whose id is not known yet).
public enum MembershipDestination: Hashable, Sendable {
    case member(NodeID, address: String)
    case address(String)

    public var address: String {
        switch self {
        case .member(_, let address), .address(let address): address
        }
    }
}
