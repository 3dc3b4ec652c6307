/// A member that can hold namespaces: its stable id, relative weight (expected share of keys is
/// proportional to it) and failure zone.
public struct PlacementMember: Hashable, Sendable, CustomStringConvertible {
    public var id: String
    public var weight: Double
    public var zone: String

    public init(id: String, weight: Double = 1, zone: String = "") {
        self.id = id
        self.weight = weight
        self.zone = zone
    }

    public var description: String { self.zone.isEmpty ? self.id : "\(self.id)@\(self.zone)" }
}
