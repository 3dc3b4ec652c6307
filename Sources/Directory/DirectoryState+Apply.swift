extension DirectoryState {
    /// One command's rules. Pure and deterministic: it reads only the state and the command.
    mutating func apply(_ command: DirectoryCommand) -> DirectoryOutcome {
        switch command {
        case .createNamespace(let name, let owner, let origin, let locked, let ttl, let createdAt):
            guard Self.isValidName(name) else { return .refused(.invalidName) }
            if let existing = self.namespaces[name] { return .refused(.namespaceExists(existing.state)) }
            guard let member = self.members[owner] else { return .refused(.noSuchMember) }
            guard member.state == .active else { return .refused(.memberNotActive) }
            self.set(
                name,
                NamespaceEntry(
                    name: name,
                    owner: owner,
                    origin: origin,
                    locked: locked,
                    ttlMilliseconds: ttl,
                    createdAt: createdAt
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
            self.set(name, entry)
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
