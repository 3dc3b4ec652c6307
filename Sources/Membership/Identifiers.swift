/// A member's stable identity (the node id; bound to its TLS certificate by the transport).
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { self.rawValue }
}

/// A member's incarnation: only the member itself raises it, to refute suspicion, to announce new
/// metadata, or when it restarts (a new process starts above every incarnation of its previous life).
public struct Incarnation: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func < (lhs: Incarnation, rhs: Incarnation) -> Bool { lhs.value < rhs.value }
    public var next: Incarnation { Incarnation(self.value &+ 1) }
    public var description: String { "\(self.value)" }
}

/// A point in time as an offset from an arbitrary origin. The shell maps a real clock onto it;
/// simulations start at `.zero`. State machines never read a clock: `now` is always passed in.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var sinceOrigin: Duration

    public init(_ sinceOrigin: Duration) { self.sinceOrigin = sinceOrigin }

    public static let zero = Instant(.zero)
    public static func seconds(_ value: Int64) -> Instant { Instant(.seconds(value)) }
    public static func milliseconds(_ value: Int64) -> Instant { Instant(.milliseconds(value)) }

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.sinceOrigin < rhs.sinceOrigin }
    public static func + (lhs: Instant, rhs: Duration) -> Instant { Instant(lhs.sinceOrigin + rhs) }
    public static func - (lhs: Instant, rhs: Instant) -> Duration { lhs.sinceOrigin - rhs.sinceOrigin }
    public var description: String {
        let (s, atto) = self.sinceOrigin.components
        return "\(s).\(String(format3(atto / 1_000_000_000_000_000)))s"
    }
}

private func format3(_ value: Int64) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, 3 - text.count)) + text
}

/// SplitMix64: a small, fast, seedable generator. Every random choice of a state machine comes from
/// one stored in its state, so a run replays exactly from its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
