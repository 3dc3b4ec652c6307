import Foundation

/// The gossip addresses of the other members this node last knew, kept in
/// `<data-dir>/_state/members.json` and used as extra seeds at the next start. A node started
/// without `TURSO_JOIN` (the first member) that restarts would otherwise believe it is alone and
/// own every namespace, and could create empty copies of namespaces the others hold.
struct KnownMembers: Sendable {
    let path: String

    init(stateDirectory: String) {
        self.path = stateDirectory + "/members.json"
    }

    func load() -> [String] {
        guard let data = FileManager.default.contents(atPath: self.path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let addresses = object["gossipAddresses"] as? [String]
        else { return [] }
        return addresses
    }

    /// Writes the list atomically when it changed.
    func save(_ addresses: [String]) {
        let sorted = Array(Set(addresses)).sorted()
        guard sorted != self.load().sorted() else { return }
        let object: [String: Any] = ["gossipAddresses": sorted]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        try? data.write(to: URL(fileURLWithPath: self.path), options: .atomic)
    }
}
