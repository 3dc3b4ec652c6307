import Directory
import Testing

@testable import Node

@Suite("Directory cache")
struct DirectoryCacheTests {
    static func entry(_ name: String, owner: String = "n1") -> NamespaceEntry {
        NamespaceEntry(name: name, owner: owner, origin: .explicit, locked: false, createdAt: 1)
    }

    @Test func holdsAtMostItsCapacityAndKeepsWhatIsUsed() {
        var cache = DirectoryCache(capacity: 100)
        cache.put("hot", Self.entry("hot"))
        cache.put("gone", nil)
        for index in 0..<1_000 {
            cache.put("n\(index)", Self.entry("n\(index)"))
            #expect(cache.count <= 100)
            // Used at least every capacity / 2 insertions: never dropped.
            if index % 40 == 0 { #expect(cache.get("hot") == .some(Self.entry("hot"))) }
        }
        #expect(cache.get("hot") == .some(Self.entry("hot")))
        #expect(cache.get("gone") == nil, "a row unused for capacity insertions is dropped")
        #expect(cache.get("n999") == .some(Self.entry("n999")))
    }

    @Test func cachesAbsentNamesAndTheNewestRow() {
        var cache = DirectoryCache(capacity: 4)
        cache.put("a", nil)
        #expect(cache.get("a") == .some(nil), "known absent")
        cache.put("a", Self.entry("a"))
        cache.put("b", Self.entry("b"))  // rotates: a and b are older now
        cache.put("a", Self.entry("a", owner: "n2"))
        cache.put("c", Self.entry("c"))  // rotates again
        #expect(cache.get("a") == .some(Self.entry("a", owner: "n2")), "the newest row, not the older one")
        #expect(cache.get("b") == nil)
        cache.removeAll()
        #expect(cache.count == 0 && cache.get("c") == nil)
    }
}
