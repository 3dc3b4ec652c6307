import HTTPTypes
import Replication

/// The peer calls of WAL shipping, under `/_peer/v1/replicas/<name>`: `GET` a follower's copy,
/// `POST …/append` (WAL bytes continuing `x-turso-wal-position`), `POST …/retire` (the owner's
/// change history; the copy retires the generation ending at the position) and `POST …/install`
/// (the database file, WAL and history one after the other, their sizes in `x-turso-install-sizes`).
/// Every shipment names its sender's role: the owner (`x-turso-node`), its epoch and the directory
/// index it read them at.
enum ShipmentMessages {
    static let epoch = HTTPField.Name("x-turso-epoch")!
    static let createdAt = HTTPField.Name("x-turso-created-at")!
    static let directoryIndex = HTTPField.Name("x-turso-directory-index")!
    static let position = HTTPField.Name("x-turso-wal-position")!
    /// The base of the copy the owner decided from (`-`: none): with the position, what the copy must
    /// still be for the shipment to apply (a late shipment whose call was given up on is refused).
    static let base = HTTPField.Name("x-turso-base")!
    static let installSizes = HTTPField.Name("x-turso-install-sizes")!
    /// `delta`: the first part is the database pages changed since the copy's base, not the file.
    static let installMode = HTTPField.Name("x-turso-install-mode")!

    /// The largest append: a shipment ends at the last commit that fits (or is one whole transaction).
    static let appendLimit = 8 << 20
    /// The largest append a follower takes (one transaction larger than this is sent as a copy).
    static let appendReceiveLimit = 1 << 30

    /// A follower's copy, as it answers every call (with the error of a refused one).
    struct CopyAnswer: Codable, Sendable {
        var position: String
        var base: String?
        /// Where the copy's database file stands in its change history (answered to `GET`): what
        /// the owner computes a delta from.
        var since: String?
        var error: String?

        init(_ copy: ShipmentPlan.Copy, since: String? = nil, error: String? = nil) {
            self.position = copy.position.description
            self.base = copy.base
            self.since = since
            self.error = error
        }

        var copy: ShipmentPlan.Copy? {
            guard let position = WALPosition(self.position) else { return nil }
            return ShipmentPlan.Copy(position: position, base: self.base)
        }
    }

    /// A shipment's headers: who sends it, and the copy it applies to.
    static func headers(sender: FollowerRules.Sender, expecting copy: ShipmentPlan.Copy) -> [(String, String)] {
        [
            (ClusterHeaders.node.rawName, sender.node), (Self.epoch.rawName, String(sender.epoch)),
            (Self.createdAt.rawName, String(sender.createdAt)),
            (Self.directoryIndex.rawName, String(sender.directoryIndex)),
            (Self.position.rawName, copy.position.description), (Self.base.rawName, copy.base ?? "-"),
        ]
    }

    /// The copy a shipment applies to; a malformed one is a 400.
    static func expected(_ fields: HTTPFields) throws(NodeError) -> ShipmentPlan.Copy {
        guard let position = fields[Self.position].flatMap({ WALPosition($0) }), let base = fields[Self.base] else {
            throw NodeError.badRequest("a shipment must name the copy it applies to (position and base)")
        }
        return ShipmentPlan.Copy(position: position, base: base == "-" ? nil : base)
    }

    /// The sender a shipment names; a malformed one is a 400.
    static func sender(_ fields: HTTPFields) throws(NodeError) -> FollowerRules.Sender {
        guard let node = fields[ClusterHeaders.node], let epoch = fields[Self.epoch].flatMap({ UInt64($0) }),
            let createdAt = fields[Self.createdAt].flatMap({ UInt64($0) }),
            let index = fields[Self.directoryIndex].flatMap({ UInt64($0) })
        else { throw NodeError.badRequest("a shipment must name its sender, epoch, incarnation and directory index") }
        return FollowerRules.Sender(node: node, epoch: epoch, createdAt: createdAt, directoryIndex: index)
    }

}
