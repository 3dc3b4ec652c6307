/// What changed for one key between two member sets.
public struct PlacementChange: Equatable, Sendable {
    public var key: String
    public var oldPlacement: [PlacementMember]
    public var newPlacement: [PlacementMember]

    public var ownerChanged: Bool { self.oldPlacement.first != self.newPlacement.first }
}

extension RendezvousPlacement {
    /// The keys whose owner or replica set differs between `old` and `new`, for `copies` copies each,
    /// in the order of `keys`.
    public static func diff(
        old: RendezvousPlacement,
        new: RendezvousPlacement,
        keys: some Sequence<String>,
        copies: Int
    ) -> [PlacementChange] {
        var changes: [PlacementChange] = []
        for key in keys {
            if copies <= 1 {
                let before = old.owner(of: key)
                let after = new.owner(of: key)
                if before != after {
                    changes.append(
                        PlacementChange(
                            key: key,
                            oldPlacement: before.map { [$0] } ?? [],
                            newPlacement: after.map { [$0] } ?? []
                        )
                    )
                }
                continue
            }
            let before = old.placement(of: key, copies: copies)
            let after = new.placement(of: key, copies: copies)
            if before.first != after.first || Set(before) != Set(after) {
                changes.append(PlacementChange(key: key, oldPlacement: before, newPlacement: after))
            }
        }
        return changes
    }
}
