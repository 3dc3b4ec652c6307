import Placement

/// A classic consistent-hash ring with virtual nodes, only as the benchmark's baseline.
struct ConsistentHashRing {
    private var points: [(hash: UInt64, member: Int)] = []
    let members: [PlacementMember]

    init(members: [PlacementMember], virtualNodes: Int) {
        self.members = members.sorted { $0.id < $1.id }
        for (index, member) in self.members.enumerated() {
            for v in 0..<virtualNodes {
                self.points.append((PlacementHash.keyHash("\(member.id)#\(v)"), index))
            }
        }
        self.points.sort { $0.hash < $1.hash }
    }

    func owner(of key: String) -> PlacementMember {
        let hash = PlacementHash.keyHash(key)
        var lo = 0
        var hi = self.points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self.points[mid].hash < hash { lo = mid + 1 } else { hi = mid }
        }
        return self.members[self.points[lo == self.points.count ? 0 : lo].member]
    }
}
