import Placement

/// The state under which a rebalance found every copy of this node placed here: while the copies
/// (their version in the registry) and the placement's members stay the same, so does the answer.
struct SettledPlacement: Sendable, Equatable {
    let copiesVersion: UInt64
    let members: [PlacementMember]
}
