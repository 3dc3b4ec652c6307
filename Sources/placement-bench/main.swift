import Placement

#if canImport(Glibc)
import Glibc
#endif

// Placement benchmark: rankings per second and keys moved per membership change, rendezvous hashing
// versus a consistent-hash ring with virtual nodes. Build in release:
//   swift run -c release placement-bench [keys]

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let keyCount = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 200_000 : 200_000
var state: UInt64 = 42
let keys: [String] = (0..<keyCount).map { _ in
    state &+= 1
    return "ns-\(PlacementHash.mix(state) % 10_000_000_000)"
}

func members(_ n: Int) -> [PlacementMember] { (0..<n).map { PlacementMember(id: "node-\($0)") } }

func balance(_ owners: [String]) -> Double {
    var counts: [String: Int] = [:]
    for owner in owners { counts[owner, default: 0] += 1 }
    let mean = Double(owners.count) / Double(counts.count)
    return Double(counts.values.max()!) / mean
}

func moved(_ a: [String], _ b: [String]) -> Double {
    Double(zip(a, b).filter { $0 != $1 }.count) / Double(a.count)
}

print("keys: \(keyCount)")
print("")
print(
    "| N | HRW owner lookups/s | HRW max/mean | HRW moved on remove | HRW moved on add | ideal remove 1/N, add 1/(N+1) | ring(100 vnodes) lookups/s | ring max/mean | ring moved on remove | ring moved on add |"
)
print("|---|---|---|---|---|---|---|---|---|---|")
var sink = 0
for n in [3, 10, 100, 1000] {
    let set = members(n)
    let hrw = RendezvousPlacement(members: set)
    let sample = n >= 1000 ? Array(keys.prefix(keyCount / 4)) : keys
    var start = now()
    var owners: [String] = []
    owners.reserveCapacity(sample.count)
    for key in sample { owners.append(hrw.owner(of: key)!.id) }
    let hrwRate = Double(sample.count) / (now() - start)
    let removed = RendezvousPlacement(members: Array(set.dropFirst()))
    let added = RendezvousPlacement(members: set + [PlacementMember(id: "node-new")])
    let hrwRemove = moved(owners, sample.map { removed.owner(of: $0)!.id })
    let hrwAdd = moved(owners, sample.map { added.owner(of: $0)!.id })

    let ring = ConsistentHashRing(members: set, virtualNodes: 100)
    start = now()
    var ringOwners: [String] = []
    ringOwners.reserveCapacity(sample.count)
    for key in sample { ringOwners.append(ring.owner(of: key).id) }
    let ringRate = Double(sample.count) / (now() - start)
    let ringRemoved = ConsistentHashRing(members: Array(set.dropFirst()), virtualNodes: 100)
    let ringAdded = ConsistentHashRing(members: set + [PlacementMember(id: "node-new")], virtualNodes: 100)
    let ringRemove = moved(ringOwners, sample.map { ringRemoved.owner(of: $0).id })
    let ringAdd = moved(ringOwners, sample.map { ringAdded.owner(of: $0).id })
    sink &+= owners.count &+ ringOwners.count
    print(
        "| \(n) | \(Int(hrwRate)) | \(fmt(balance(owners))) | \(fmt(hrwRemove * 100))% | \(fmt(hrwAdd * 100))% | \(fmt(100.0 / Double(n)))%, \(fmt(100.0 / Double(n + 1)))% | \(Int(ringRate)) | \(fmt(balance(ringOwners))) | \(fmt(ringRemove * 100))% | \(fmt(ringAdd * 100))% |"
    )
}

// The headline figure: rank 1M keys over 100 members.
let hundred = RendezvousPlacement(members: members(100))
var million: [String] = []
million.reserveCapacity(1_000_000)
for i in 0..<1_000_000 { million.append(i < keys.count ? keys[i] : "ns-extra-\(i)") }
let start = now()
var count = 0
for key in million where hundred.owner(of: key) != nil { count += 1 }
let elapsed = now() - start
print("")
print("owner(of:) for 1,000,000 keys over 100 members: \(fmt(elapsed)) s (\(Int(Double(count) / elapsed)) keys/s)")
if sink == 42 { print("") }

func fmt(_ x: Double) -> String {
    let scaled = (x * 1000).rounded() / 1000
    return "\(scaled)"
}
