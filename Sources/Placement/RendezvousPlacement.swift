#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Highest-random-weight (rendezvous) placement: every member gets a score for a key, the highest
/// score owns it, the next ones hold its replicas. All nodes with the same member set agree with no
/// coordination; removing a member moves only its keys (each to its rank-2 member), adding one moves
/// about 1/N of the keys, all to the new member.
///
/// Weights use the logarithmic method: with `u` the member's score mapped to (0, 1], the weighted
/// score is `-weight / ln(u)`, which makes each member's expected share proportional to its weight.
/// When all weights are equal the raw scores are compared directly (same order, no logarithm).
public struct RendezvousPlacement: Sendable {
    public let members: [PlacementMember]
    @usableFromInline let seeds: [UInt64]
    @usableFromInline let weights: [Double]
    @usableFromInline let uniformWeights: Bool

    /// Members are sorted by id, so the input order never matters. Duplicate ids keep the first.
    public init(members: [PlacementMember]) {
        var seen = Set<String>()
        let unique = members.filter { seen.insert($0.id).inserted }.sorted { $0.id < $1.id }
        self.members = unique
        self.seeds = unique.map { PlacementHash.keyHash($0.id) }
        self.weights = unique.map { max($0.weight, 0) }
        self.uniformWeights = Set(self.weights).count <= 1
    }

    public var isEmpty: Bool { self.members.isEmpty }

    /// The weighted score of member `index` for a key hash; higher wins.
    @inlinable
    func score(_ keyHash: UInt64, _ index: Int) -> Double {
        let raw = PlacementHash.score(keyHash: keyHash, memberSeed: self.seeds[index])
        // u in (0, 1]: 53 high bits, shifted so that 0 never occurs.
        let u = (Double(raw >> 11) + 1) * 0x1.0p-53
        return -self.weights[index] / log(u)
    }

    /// True when member `a` outranks member `b` for `keyHash` (ties: the smaller id wins).
    @inlinable
    func outranks(_ a: Int, _ b: Int, _ keyHash: UInt64) -> Bool {
        if self.uniformWeights {
            let x = PlacementHash.score(keyHash: keyHash, memberSeed: self.seeds[a])
            let y = PlacementHash.score(keyHash: keyHash, memberSeed: self.seeds[b])
            return x != y ? x > y : a < b
        }
        let x = self.score(keyHash, a)
        let y = self.score(keyHash, b)
        return x != y ? x > y : a < b
    }

    /// The owner of `key`: the highest-ranked member, or nil with no members. One pass, no allocation.
    @inlinable
    public func owner(of key: String) -> PlacementMember? {
        guard !self.members.isEmpty else { return nil }
        let hash = PlacementHash.keyHash(key)
        var best = 0
        if self.uniformWeights {
            var bestScore = PlacementHash.score(keyHash: hash, memberSeed: self.seeds[0])
            for index in 1..<self.members.count {
                let s = PlacementHash.score(keyHash: hash, memberSeed: self.seeds[index])
                if s > bestScore {
                    bestScore = s
                    best = index
                }
            }
        } else {
            for index in 1..<self.members.count where self.outranks(index, best, hash) { best = index }
        }
        return self.members[best]
    }

    /// Every member, best first, for `key`.
    public func ranking(of key: String) -> [PlacementMember] {
        let hash = PlacementHash.keyHash(key)
        return Array(0..<self.members.count).sorted { self.outranks($0, $1, hash) }.map { self.members[$0] }
    }

    /// The members holding a copy of `key` besides its owner, for `copies` copies in all (owner
    /// included, like `TURSO_REPLICAS`): ranks 2…`copies`, capped by the member count.
    ///
    /// Zone rule: after the owner, members in zones that hold no copy yet come first (in rank order);
    /// once every zone holds one, the rest follow in rank order.
    public func replicas(of key: String, copies: Int) -> [PlacementMember] {
        Array(self.placement(of: key, copies: copies).dropFirst())
    }

    /// The owner followed by its replicas (see `replicas(of:copies:)`).
    public func placement(of key: String, copies: Int) -> [PlacementMember] {
        let wanted = min(max(copies, 0), self.members.count)
        guard wanted > 0 else { return [] }
        let ranked = self.ranking(of: key)
        var chosen = [ranked[0]]
        var zones: Set<String> = [ranked[0].zone]
        var skipped: [PlacementMember] = []
        for member in ranked.dropFirst() where chosen.count < wanted {
            if zones.contains(member.zone) {
                skipped.append(member)
            } else {
                chosen.append(member)
                zones.insert(member.zone)
            }
        }
        for member in skipped where chosen.count < wanted { chosen.append(member) }
        return chosen
    }

    /// The members that keep copies of `key` besides `owner`, which need not rank first (a namespace
    /// stays where it was created or moved until a move says otherwise): `copies` in all with the
    /// owner, in rank order, members in zones without a copy first. `eligible` filters candidates.
    public func followers(
        of key: String,
        owner: String,
        copies: Int,
        where eligible: (PlacementMember) -> Bool = { _ in true }
    ) -> [PlacementMember] {
        let wanted = max(copies - 1, 0)
        guard wanted > 0 else { return [] }
        let candidates = self.ranking(of: key).filter { $0.id != owner && eligible($0) }
        var zones = Set(self.members.filter { $0.id == owner }.map(\.zone))
        var chosen: [PlacementMember] = []
        var skipped: [PlacementMember] = []
        for member in candidates where chosen.count < wanted {
            if zones.insert(member.zone).inserted { chosen.append(member) } else { skipped.append(member) }
        }
        for member in skipped where chosen.count < wanted { chosen.append(member) }
        return chosen
    }
}
