import Directory
import Foundation
import Membership
import Placement

/// Replica sets: which members follow the namespaces this node owns. The owner proposes them (a
/// compare-and-set on the entry's epoch and ISR version, checked against the active members when
/// applied), so every follower set in the directory went through the log.
extension Cluster {
    /// How often the follower sets are checked when nothing changed (members joining or leaving
    /// trigger a check at once).
    static let followerCheckInterval: Duration = .seconds(30)

    /// The followers `owner` should give `name`: the ones it has that are still placement members,
    /// topped up by rendezvous rank (zones spread) with members alive now, `TURSO_REPLICAS` copies
    /// in all. Keeping current followers avoids copying a namespace again for a better rank alone.
    func followers(for name: String, owner: String, keeping current: [String], view: ClusterView) -> [String] {
        let wanted = max(self.configuration.replicas - 1, 0)
        guard wanted > 0 else { return [] }
        let members = Set(view.placement.members.map(\.id))
        var chosen = current.filter { $0 != owner && members.contains($0) }
        if chosen.count > wanted { chosen.removeLast(chosen.count - wanted) }
        if chosen.count < wanted {
            let taken = chosen
            chosen += view.placement.followers(of: name, owner: owner, copies: wanted - taken.count + 1) { candidate in
                !taken.contains(candidate.id) && view.member(candidate.id)?.status == .alive
            }.map(\.id)
        }
        return chosen
    }

    /// New namespaces created here get followers from the placement (format 3 permitting).
    func placeFollowersOfNewNamespaces(_ directory: DirectoryService) {
        directory.followerPlacement.withLock {
            $0 = { [weak self] name in
                guard let self else { return [] }
                return self.followers(for: name, owner: self.selfID, keeping: [], view: self.view)
            }
        }
    }

    /// Proposes the follower set each namespace this node owns should have, where it differs: after
    /// a change of the placement's members, and every `followerCheckInterval`.
    func assignFollowers() async {
        guard let directory = self.service.directory, let log = self.log, self.ownership != nil,
            log.read(\.format) >= 3
        else { return }
        let view = self.view
        let settled = SettledPlacement(
            copiesVersion: UInt64(self.configuration.replicas),
            members: view.placement.members
        )
        if let (last, at) = self.settledFollowers.withLock({ $0 }), last == settled,
            self.configuration.replicas == 1 || ContinuousClock.now - at < Self.followerCheckInterval
        {
            return
        }
        guard let owned = try? log.owned(by: self.selfID, state: .active) else { return }
        let changes = owned.compactMap { entry -> (entry: NamespaceEntry, followers: [String])? in
            let wanted = self.followers(for: entry.name, owner: self.selfID, keeping: entry.followers, view: view)
            return wanted == entry.followers ? nil : (entry, wanted)
        }
        var applied = 0
        if !changes.isEmpty {
            applied = (try? await directory.setFollowers(changes)) ?? 0
            self.logger.info(
                "follower sets proposed",
                metadata: ["replication.changes": "\(changes.count)", "replication.applied": "\(applied)"]
            )
        }
        self.settledFollowers.withLock { $0 = applied == changes.count ? (settled, .now) : nil }
    }
}
