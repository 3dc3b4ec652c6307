extension DirectoryState {
    /// One command's rules. Pure and deterministic: it reads only the state and the command.
    mutating func apply(_ command: DirectoryCommand) -> DirectoryOutcome {
        // Rules the log has not raised the directory to are refused, so what a snapshot of this
        // format can carry is all the state there is.
        if case .raiseFormat = command {
        } else if command.requiredFormat > DirectoryFormat.usable(raised: self.format) {
            return .refused(.formatNotRaised(current: self.format))
        }
        switch command {
        case .createNamespace(let name, let owner, let origin, let locked, let ttl, let createdAt, let followers):
            guard Self.isValidName(name) else { return .refused(.invalidName) }
            if let existing = self.namespaces[name] { return .refused(.namespaceExists(existing.state)) }
            guard let member = self.members[owner] else { return .refused(.noSuchMember) }
            guard member.state == .active else { return .refused(.memberNotActive) }
            // Empty everywhere, so every follower holds all of it from the start.
            var seen: Set<String> = [owner]
            let chosen = followers.filter { self.members[$0]?.state == .active && seen.insert($0).inserted }
            self.set(
                name,
                NamespaceEntry(
                    name: name,
                    owner: owner,
                    origin: origin,
                    locked: locked,
                    ttlMilliseconds: ttl,
                    createdAt: createdAt,
                    followers: chosen,
                    inSync: chosen,
                    isrVersion: chosen.isEmpty ? 0 : 1
                )
            )
        case .beginArchive(let name, let epoch):
            guard var entry = self.namespaces[name] else { return .refused(.noSuchNamespace) }
            guard entry.epoch == epoch else { return .refused(.epochMismatch(current: entry.epoch)) }
            guard entry.state == .active else { return .refused(.namespaceNotActive) }
            entry.state = .archiving
            self.namespaces[name] = entry
        case .finishArchive(let name, let epoch):
            guard let entry = self.namespaces[name] else { return .refused(.noSuchNamespace) }
            guard entry.epoch == epoch else { return .refused(.epochMismatch(current: entry.epoch)) }
            guard entry.state == .archiving else { return .refused(.invalidTransition) }
            self.set(name, nil)
        case .guarded(let createdAt, let command):
            guard let name = command.namespaceName, var entry = self.namespaces[name], entry.createdAt == createdAt
            else { return .refused(.noSuchNamespace) }
            // A reclaim (a move to the owner it has) settles the owner's own move whatever the
            // owner's membership state: a leaving member must be able to take back what it could
            // not hand off.
            if case .moveNamespace(_, let epoch, let owner) = command, owner == entry.owner {
                guard entry.epoch == epoch else { return .refused(.epochMismatch(current: entry.epoch)) }
                guard entry.state == .active else { return .refused(.namespaceNotActive) }
                entry.epoch += 1
                self.namespaces[name] = entry
                return .applied
            }
            return self.apply(command)
        case .moveNamespace(let name, let epoch, let owner):
            guard var entry = self.namespaces[name] else { return .refused(.noSuchNamespace) }
            guard entry.epoch == epoch else { return .refused(.epochMismatch(current: entry.epoch)) }
            guard entry.state == .active else { return .refused(.namespaceNotActive) }
            guard let member = self.members[owner] else { return .refused(.noSuchMember) }
            guard member.state == .active else { return .refused(.memberNotActive) }
            entry.owner = owner
            entry.epoch += 1
            // The new owner's copy came by a move, not from the followers' stream: they must show
            // they continue it before they count again.
            if !entry.followers.isEmpty {
                entry.followers.removeAll { $0 == owner }
                entry.inSync = []
                entry.isrVersion += 1
            }
            self.set(name, entry)
        case .setFollowers(let name, let epoch, let isrVersion, let followers):
            let members = self.members
            return self.changeReplicas(name, epoch, isrVersion) { entry in
                guard Set(followers).count == followers.count, !followers.contains(entry.owner) else {
                    return .invalidTransition
                }
                for id in followers {
                    guard let member = members[id] else { return .noSuchMember }
                    guard member.state == .active else { return .memberNotActive }
                }
                entry.inSync = entry.inSync.filter { followers.contains($0) }
                entry.followers = followers
                return nil
            }
        case .setInSync(let name, let epoch, let isrVersion, let inSync):
            return self.changeReplicas(name, epoch, isrVersion) { entry in
                guard Set(inSync).count == inSync.count, inSync.allSatisfy(entry.followers.contains) else {
                    return .invalidTransition
                }
                entry.inSync = inSync
                return nil
            }
        case .setLocked(let name, let locked):
            return self.update(name) { $0.locked = locked }
        case .setTTL(let name, let ttl):
            return self.update(name) { $0.ttlMilliseconds = ttl }
        case .joinMember(let id, let storageID, let zone):
            // A removed storage id is never trusted again; the node id comes back as a new member
            // only with a new data directory (a wiped disk, a replaced machine). The identities it
            // had before stay recorded as removed under `Self.retiredKey`.
            if self.members[Self.retiredKey(id, storageID)] != nil { return .refused(.memberRemoved) }
            if let member = self.members[id] {
                if member.state == .removed {
                    guard member.storageID != storageID else { return .refused(.memberRemoved) }
                    let retired = Self.retiredKey(id, member.storageID)
                    self.members[retired] = MemberEntry(
                        id: retired,
                        storageID: member.storageID,
                        zone: member.zone,
                        state: .removed
                    )
                    self.members[id] = MemberEntry(id: id, storageID: storageID, zone: zone, state: .joining)
                    return .applied
                }
                guard member.storageID == storageID else { return .refused(.storageMismatch) }
                if member.state == .left {
                    self.members[id] = MemberEntry(id: id, storageID: storageID, zone: zone, state: .joining)
                }
                return .applied
            }
            self.members[id] = MemberEntry(id: id, storageID: storageID, zone: zone, state: .joining)
        case .activateMember(let id, let storageID):
            return self.transition(id, storageID, from: [.joining, .active], to: .active)
        case .leaveMember(let id, let storageID):
            return self.transition(id, storageID, from: [.joining, .active, .leaving], to: .leaving)
        case .leftMember(let id, let storageID):
            guard self.ownedCounts[id, default: 0] == 0 else {
                return .refused(.invalidTransition)  // it still owns namespaces
            }
            return self.transition(id, storageID, from: [.leaving, .left], to: .left)
        case .removeMember(let id):
            guard var member = self.members[id] else { return .refused(.noSuchMember) }
            member.state = .removed
            self.members[id] = member
        case .raiseFormat(let version):
            guard version > self.format, version <= Self.supportedFormat else {
                return .refused(.formatNotRaised(current: self.format))
            }
            self.format = version
        }
        return .applied
    }

    /// Writes one namespace row (nil: gone), keeping the counts by owner.
    private mutating func set(_ name: String, _ entry: NamespaceEntry?) {
        if let old = self.namespaces[name] {
            let left = self.ownedCounts[old.owner, default: 0] - 1
            self.ownedCounts[old.owner] = left > 0 ? left : nil
        }
        if let entry { self.ownedCounts[entry.owner, default: 0] += 1 }
        self.namespaces[name] = entry
    }

    private mutating func update(_ name: String, _ change: (inout NamespaceEntry) -> Void) -> DirectoryOutcome {
        guard var entry = self.namespaces[name] else { return .refused(.noSuchNamespace) }
        guard entry.state == .active else { return .refused(.namespaceNotActive) }
        change(&entry)
        self.namespaces[name] = entry
        return .applied
    }

    /// A compare-and-set change of a namespace's replica set: refused unless the namespace is active
    /// at `epoch` and `isrVersion`; `change` refuses or edits, and the version goes up.
    private mutating func changeReplicas(
        _ name: String,
        _ epoch: UInt64,
        _ isrVersion: UInt64,
        _ change: (inout NamespaceEntry) -> DirectoryRefusal?
    ) -> DirectoryOutcome {
        guard var entry = self.namespaces[name] else { return .refused(.noSuchNamespace) }
        guard entry.epoch == epoch else { return .refused(.epochMismatch(current: entry.epoch)) }
        guard entry.isrVersion == isrVersion else { return .refused(.isrVersionMismatch(current: entry.isrVersion)) }
        guard entry.state == .active else { return .refused(.namespaceNotActive) }
        if let refusal = change(&entry) { return .refused(refusal) }
        entry.isrVersion += 1
        self.namespaces[name] = entry
        return .applied
    }

    private mutating func transition(
        _ id: String,
        _ storageID: String,
        from allowed: [MemberEntry.State],
        to state: MemberEntry.State
    ) -> DirectoryOutcome {
        guard var member = self.members[id] else { return .refused(.noSuchMember) }
        if member.state == .removed { return .refused(.memberRemoved) }
        guard member.storageID == storageID else { return .refused(.storageMismatch) }
        guard allowed.contains(member.state) else { return .refused(.invalidTransition) }
        member.state = state
        self.members[id] = member
        return .applied
    }
}
