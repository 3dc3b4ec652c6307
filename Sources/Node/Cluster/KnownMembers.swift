import Foundation
import Synchronization

/// The gossip addresses of the other members this node last knew, kept in
/// `<data-dir>/_state/members.json` and used as extra seeds at the next start. A node started
/// without `TURSO_JOIN` (the first member) that restarts would otherwise believe it is alone and
/// own every namespace, and could create empty copies of namespaces the others hold.
final class KnownMembers: Sendable {
    let path: String
    /// What the file holds (read once, then kept in step), so an unchanged list costs no I/O.
    private let saved = Mutex<[String]?>(nil)

    /// The file's format.
    struct File: Codable {
        var gossipAddresses: [String]
    }

    init(stateDirectory: String) {
        self.path = stateDirectory + "/members.json"
    }

    func load() -> [String] {
        guard let data = FileManager.default.contents(atPath: self.path),
            let file = try? JSONDecoder().decode(File.self, from: data)
        else { return [] }
        return file.gossipAddresses
    }

    /// Writes the list atomically when it changed.
    func save(_ addresses: [String]) {
        let sorted = Array(Set(addresses)).sorted()
        let unchanged = self.saved.withLock { saved in
            if saved == nil { saved = self.load().sorted() }
            return saved == sorted
        }
        guard !unchanged else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let data = try? encoder.encode(File(gossipAddresses: sorted)),
            (try? data.write(to: URL(fileURLWithPath: self.path), options: .atomic)) != nil
        else { return }
        self.saved.withLock { $0 = sorted }
    }
}
