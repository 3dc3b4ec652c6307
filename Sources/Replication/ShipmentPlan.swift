/// What an owner sends a follower next, from its own WAL's tail and what the follower reported.
public enum ShipmentPlan: Sendable, Equatable {
    /// The follower holds everything committed.
    case upToDate
    /// The bytes of the current generation from this offset to the tail.
    case append(from: Int)
    /// The follower holds all of the generation the owner retired last: it retires it too.
    case retire
    /// Nothing of the follower's copy can be continued: a full copy of the files.
    case install

    /// A follower's copy as it reports it.
    public struct Copy: Sendable, Equatable {
        /// Its WAL's committed end.
        public var position: WALPosition
        /// What its database file is the owner's as of: the digest of the change history it took
        /// with it at its last retire or install. The owner's history changes exactly when its
        /// database file does (a checkpoint, under the node's lock), so equal digests with an empty
        /// WAL mean equal database files.
        public var base: String?

        public init(position: WALPosition, base: String?) {
            self.position = position
            self.base = base
        }
    }

    /// The generation an owner retired last, and where it ended.
    public struct Retired: Sendable, Equatable {
        public var end: WALPosition

        public init(end: WALPosition) { self.end = end }
    }

    /// The next step for a follower whose copy is `copy`. `base`: the digest of the owner's change
    /// history now; `retired`: the generation the owner checkpointed last, when it did since it
    /// started (a follower left at that generation's end retires it rather than copy whole).
    public static func next(tail: WALTail, base: String, retired: Retired?, copy: Copy) -> ShipmentPlan {
        let position = copy.position
        if let generation = position.generation {
            if generation == tail.position.generation {
                if position == tail.position { return .upToDate }
                if position.offset < tail.position.offset, tail.commits[position.offset] == position.checksum {
                    return .append(from: position.offset)
                }
                return .install
            }
            if let retired, position == retired.end { return .retire }
            return .install
        }
        // An empty WAL continues only a database file equal to the owner's.
        guard copy.base == base else { return .install }
        return tail.header == nil ? .upToDate : .append(from: 0)
    }
}
