/// A replica's identity in the Raft group. Deliberately not `Hashable`: the module keeps its
/// per-replica tables in arrays sorted by id so that iteration order, and therefore every message
/// sent, is a function of the inputs alone (seed-replayable simulations).
public struct ReplicaID: Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "n\(self.rawValue)" }
}
