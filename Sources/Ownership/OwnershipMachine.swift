import Directory

/// One node's side of namespace ownership, as a pure state machine driven by the directory as this
/// node applies it and by local events; it returns the actions for the shell to carry out (in the
/// shape of async-http-client's connection pool state machine). Every rule that decides whether
/// this node may write a namespace lives here, so the simulation checks it with a replicated log.
///
/// A version is (incarnation, epoch): the incarnation (`createdAt`) tells a namespace from an
/// earlier one of the same name, so nothing of an archived namespace is ever served, staged or
/// reclaimed as a later one.
///
/// The rules:
/// - **Admit** a request only while the applied directory names this node owner of the namespace,
///   active, at version v, this node holds its files of v, and it is not fenced.
/// - **Move out** (owner at v, to a target): copy while serving (`precopy`), fence and drain, stop
///   the backend and record the files as sealed at v (durable), copy the tail into the target's
///   staging for v + 1 (`transfer`: the target takes only the next version of what it has applied,
///   and confirms once durable), then propose the move (a compare-and-set on v, guarded by the
///   incarnation). The target serves once it applies the move and holds staging of v + 1; this node drops its
///   copy once it applies the move.
/// - **A move whose outcome is not known is settled by the log, never by asking the target:** the
///   owner proposes reassigning the namespace at v to itself. If that applies, the lost move can
///   never apply (the epoch moved on): the sealed files are relabelled v + 1 and served again. If
///   the move applied first, the reclaim is refused and the applied move drops the copy. A refused
///   move or a failed transfer is reclaimed the same way, so every attempt stages a version of its
///   own and a late copy of an earlier attempt is refused.
/// - **Archive**: propose begin (nothing is admitted anywhere from its application), drain, move
///   the files to the archive, propose finish.
/// - **Restart**: sealed files are reclaimed (or dropped if the move applied); an archive the
///   directory began is finished (also one that applied in the middle of a move).
///
/// The shell's contract: an action's durable effect (a record, files moved into place) is complete
/// before the machine gets its next input, and staging stays until the record of its install is
/// durable; the simulation performs them so.
public struct OwnershipMachine: Sendable {
    /// One namespace's files at one epoch: `createdAt` tells the namespace from an earlier one of
    /// the same name (archived, then created again).
    public struct Version: Sendable, Hashable, CustomStringConvertible {
        public var createdAt: UInt64
        public var epoch: UInt64

        public init(createdAt: UInt64, epoch: UInt64) {
            self.createdAt = createdAt
            self.epoch = epoch
        }

        public init(_ entry: NamespaceEntry) {
            self.init(createdAt: entry.createdAt, epoch: entry.epoch)
        }

        /// The version a move from this one creates.
        public var next: Version { Version(createdAt: self.createdAt, epoch: self.epoch + 1) }
        public var description: String { "\(self.createdAt)@\(self.epoch)" }
    }

    /// What this node durably holds of a namespace.
    public enum Copy: Sendable, Equatable {
        /// Its files, usable at this version.
        case held(Version)
        /// The final files of a move out at this version: not served until reclaimed.
        case sealed(Version)

        public var version: Version {
            switch self {
            case .held(let version), .sealed(let version): version
            }
        }
    }

    public enum Admission: Sendable, Equatable {
        /// Serve it here (the caller must call `finished`).
        case serve
        /// The directory names another owner.
        case forward(owner: String)
        /// The directory has no such namespace: the caller may propose its creation.
        case absent
        /// Owned here but not servable now; `moving` clears by itself (wait and ask again).
        case unavailable(Unavailable)
    }

    public enum Unavailable: Sendable, Equatable {
        case moving
        case archiving
        /// This node is named owner but does not hold the files of that epoch.
        case notHere
    }

    public enum Action: Sendable, Equatable {
        /// Copy the files to the target while this node still serves.
        case precopy(String, to: String)
        /// Stop the backend (requests still running fail), then record the files as sealed at this
        /// version (durable) and report `sealed`.
        case seal(String, Version)
        /// Copy what the target lacks into its staging for this version (durable there; the target
        /// takes it only if `acceptsTransfer` there), then report `transferred`.
        case transfer(String, to: String, Version)
        /// Propose a directory command, then report `answered` with its outcome.
        case propose(String, DirectoryCommand)
        /// Record the sealed files as held at this version (reclaimed): they are served again.
        case unseal(String, Version)
        /// Record the staged files of this version as held (a move to this node applied).
        case install(String, Version)
        /// Record a created namespace as held at this version, epoch 1 (its files appear on first use).
        case provision(String, Version)
        /// Delete this node's files of the namespace, and its staging other than `keeping` (it is
        /// owned elsewhere or gone; staging of the next version is a move to this node in progress).
        case drop(String, keeping: Version?)
        /// Move the files to the archive (after the directory began archiving), then report
        /// `archived`.
        case archiveFiles(String)
        /// Requests waiting for the namespace may ask again (it settled: served here or elsewhere).
        case release(String)
    }

    /// What a proposal came to.
    public enum Outcome: Sendable, Equatable {
        case applied
        case refused
        /// No answer: it may or may not apply, now or later.
        case unknown
    }

    /// Test-only faults that must make the simulation fail.
    public enum Mutation: Sendable, Hashable {
        /// Serve again at once when a move's outcome is unknown, instead of reclaiming.
        case unfenceOnUnknownOutcome
        /// Keep admitting requests while the files are sealed and copied to the target.
        case skipFence
        /// Leave an archive the directory began alone while a move of the namespace is under way.
        case archiveOnlyWhenIdle
    }

    private enum Task: Sendable, Equatable {
        case moving(to: String, phase: MovePhase)
        case reclaiming
        case archiving(ArchivePhase)
    }

    private enum MovePhase: Sendable, Equatable {
        case precopying
        case draining
        case sealing
        case transferring
        case proposing
    }

    private enum ArchivePhase: Sendable, Equatable {
        case beginning
        case draining
        case archiving
        case finishing
    }

    private struct Slot: Sendable, Equatable {
        var entry: NamespaceEntry?
        var copy: Copy?
        var staged: Version?
        var inFlight = 0
        var fenced = false
        var task: Task?
    }

    public let node: String
    private let mutations: Set<Mutation>
    /// Only the namespaces this node owns or has something of (files, staging, a task, requests):
    /// a name owned elsewhere with nothing here has no slot, and the inputs that concern it take
    /// its directory entry as an argument (`applied:`), so a node does not hold the whole directory.
    private var slots: [String: Slot] = [:]

    /// A node starting with what it durably holds and the directory as applied so far; the actions
    /// finish what a crash interrupted.
    public init(
        node: String,
        copies: [String: Copy],
        staged: [String: Version],
        directory: [String: NamespaceEntry],
        mutations: Set<Mutation> = []
    ) {
        self.node = node
        self.mutations = mutations
        for (name, copy) in copies { self.slots[name, default: Slot()].copy = copy }
        for (name, version) in staged { self.slots[name, default: Slot()].staged = version }
        for (name, entry) in directory { self.slots[name, default: Slot()].entry = entry }
        for name in Array(self.slots.keys) { self.forgetIfIdle(name) }
    }

    /// Forgets `name` when this node owns it not and has nothing of it.
    private mutating func forgetIfIdle(_ name: String) {
        guard let slot = self.slots[name] else { return }
        if slot == Slot(entry: slot.entry), slot.entry?.owner != self.node { self.slots[name] = nil }
    }

    /// The slot of `name`; for a name without one, a slot of nothing but `applied` when another
    /// member owns it. (Owned here without a slot: this node has not applied it yet, so `applied`
    /// is newer than what it knows and is not used.)
    private func slot(_ name: String, applied: NamespaceEntry?) -> Slot? {
        if let slot = self.slots[name] { return slot }
        guard let applied, applied.owner != self.node else { return nil }
        return Slot(entry: applied)
    }

    /// How many namespaces this machine keeps a slot for (those owned here, or with something here).
    public var slotCount: Int { self.slots.count }

    /// The actions a (re)started node owes: applies the directory it starts with.
    public mutating func start() -> [Action] {
        var actions: [Action] = []
        for name in self.slots.keys.sorted() {
            actions += self.settle(name)
            actions += self.archiveIfBegun(name)
            if case .sealed(let version) = self.slots[name]?.copy, let entry = self.slots[name]?.entry,
                entry.owner == self.node, entry.state == .active, Version(entry) == version
            {
                actions += self.reclaim(name, version)
            }
            self.forgetIfIdle(name)
        }
        return actions
    }

    // MARK: - Requests

    /// Whether a request for `name` may run here now; `.serve` counts it in flight. `applied` is
    /// the directory's entry of `name` as applied here.
    public mutating func admit(_ name: String, applied: NamespaceEntry?) -> Admission {
        let admission = self.admission(name, applied: applied)
        if admission == .serve { self.slots[name, default: Slot()].inFlight += 1 }
        return admission
    }

    /// What `admit` would answer, without admitting.
    public func admission(_ name: String, applied: NamespaceEntry?) -> Admission {
        guard let slot = self.slot(name, applied: applied), let entry = slot.entry else { return .absent }
        guard entry.owner == self.node else { return .forward(owner: entry.owner) }
        guard entry.state == .active else { return .unavailable(.archiving) }
        if self.mutations.contains(.skipFence), case .moving = slot.task, slot.copy == .sealed(Version(entry)) {
            return .serve
        }
        guard slot.copy == .held(Version(entry)) else {
            return slot.task == nil ? .unavailable(.notHere) : .unavailable(.moving)
        }
        guard !slot.fenced else { return .unavailable(.moving) }
        return .serve
    }

    /// A request admitted by `admit` ended (answered or failed).
    public mutating func finished(_ name: String) -> [Action] {
        guard var slot = self.slots[name], slot.inFlight > 0 else { return [] }
        slot.inFlight -= 1
        self.slots[name] = slot
        guard slot.inFlight == 0 else { return [] }
        let actions = self.drained(name)
        self.forgetIfIdle(name)
        return actions
    }

    /// The wait for requests in flight ran out: go on without them (stopping the backend fails them).
    public mutating func drainTimedOut(_ name: String) -> [Action] { self.drained(name) }

    private mutating func drained(_ name: String) -> [Action] {
        guard var slot = self.slots[name], let entry = slot.entry else { return [] }
        switch slot.task {
        case .moving(let target, .draining):
            slot.task = .moving(to: target, phase: .sealing)
            self.slots[name] = slot
            return [.seal(name, Version(entry))]
        case .archiving(.draining):
            slot.task = .archiving(.archiving)
            self.slots[name] = slot
            return [.archiveFiles(name)]
        default:
            return []
        }
    }

    // MARK: - Moving out

    /// Starts moving `name` to `target` (ignored unless this node serves it and does nothing else
    /// with it).
    public mutating func startMove(_ name: String, to target: String) -> [Action] {
        guard target != self.node, self.slots[name].map({ self.admission(name, applied: $0.entry) }) == .serve,
            self.slots[name]?.task == nil
        else { return [] }
        self.slots[name]?.task = .moving(to: target, phase: .precopying)
        return [.precopy(name, to: target)]
    }

    public mutating func precopied(_ name: String, succeeded: Bool) -> [Action] {
        guard var slot = self.slots[name], case .moving(let target, .precopying) = slot.task else { return [] }
        guard succeeded else {
            slot.task = nil
            self.slots[name] = slot
            return []
        }
        slot.fenced = !self.mutations.contains(.skipFence)
        slot.task = .moving(to: target, phase: .draining)
        self.slots[name] = slot
        return slot.inFlight == 0 ? self.drained(name) : []
    }

    /// The files are sealed at the epoch (durable).
    public mutating func sealed(_ name: String) -> [Action] {
        guard var slot = self.slots[name], case .moving(let target, .sealing) = slot.task,
            case .held(let version) = slot.copy
        else { return [] }
        slot.copy = .sealed(version)
        slot.task = .moving(to: target, phase: .transferring)
        self.slots[name] = slot
        return [.transfer(name, to: target, version.next)]
    }

    public mutating func transferred(_ name: String, succeeded: Bool) -> [Action] {
        guard var slot = self.slots[name], case .moving(let target, .transferring) = slot.task,
            case .sealed(let version) = slot.copy
        else { return [] }
        guard succeeded else {
            // The copy may have landed (its confirmation lost): the log settles this attempt too,
            // so every transfer is staged for a version of its own.
            return self.reclaim(name, version)
        }
        slot.task = .moving(to: target, phase: .proposing)
        self.slots[name] = slot
        return [.propose(name, Self.reassign(name, version, to: target))]
    }

    /// A proposal made for `name` came to `outcome` (after its application, if applied here).
    public mutating func answered(_ name: String, _ outcome: Outcome) -> [Action] {
        guard let slot = self.slots[name] else { return [] }
        switch slot.task {
        case .moving(_, .proposing), .reclaiming:
            guard case .sealed(let version) = slot.copy, outcome != .applied else { return [] }
            if self.mutations.contains(.unfenceOnUnknownOutcome), case .moving = slot.task {
                self.slots[name]?.copy = .held(version)
                self.slots[name]?.fenced = false
                self.slots[name]?.task = nil
                return [.unseal(name, version), .release(name)]
            }
            // Refused, or unknown (it may still apply): the log settles it.
            return self.reclaim(name, version)
        case .archiving(.beginning), .archiving(.finishing):
            guard outcome != .applied, let entry = slot.entry, entry.owner == self.node else {
                if outcome == .refused, case .archiving(.beginning) = slot.task, slot.entry?.state == .active {
                    self.slots[name]?.task = nil
                }
                return []
            }
            if case .archiving(.beginning) = slot.task {
                if entry.state == .archiving { return [] }  // applied meanwhile
                guard outcome == .unknown else {
                    self.slots[name]?.task = nil
                    return []
                }
                return [.propose(name, Self.guarded(entry, .beginArchive(name: name, epoch: entry.epoch)))]
            }
            return [.propose(name, Self.guarded(entry, .finishArchive(name: name, epoch: entry.epoch)))]
        default:
            return []
        }
    }

    private mutating func reclaim(_ name: String, _ version: Version) -> [Action] {
        self.slots[name]?.fenced = true
        self.slots[name]?.task = .reclaiming
        return [.propose(name, Self.reassign(name, version, to: self.node))]
    }

    /// `command`, applied only to the namespace `entry` describes.
    private static func guarded(_ entry: NamespaceEntry, _ command: DirectoryCommand) -> DirectoryCommand {
        .guarded(createdAt: entry.createdAt, command)
    }

    /// The compare-and-set on the sealed files' version: it names their namespace, so a reclaim
    /// never moves a later namespace of the same name.
    private static func reassign(_ name: String, _ version: Version, to owner: String) -> DirectoryCommand {
        .guarded(createdAt: version.createdAt, .moveNamespace(name: name, epoch: version.epoch, owner: owner))
    }

    // MARK: - Moving in

    /// Whether a transfer of `name` at `version` may be staged here: only the next version of the
    /// namespace as this node has applied it (so a node that lags, a late copy of an earlier
    /// attempt, or one of an earlier namespace of the same name is refused; the sender's attempt
    /// then fails and the log settles it).
    public func acceptsTransfer(_ name: String, _ version: Version, applied: NamespaceEntry?) -> Bool {
        guard let slot = self.slot(name, applied: applied), let entry = slot.entry else { return false }
        guard entry.state == .active, entry.owner != self.node, Version(entry).next == version else { return false }
        return slot.staged != version
    }

    /// A transfer that `acceptsTransfer` allowed is staged here (durable).
    public mutating func staged(_ name: String, _ version: Version, applied: NamespaceEntry?) -> [Action] {
        guard var slot = self.slot(name, applied: applied), self.acceptsTransfer(name, version, applied: applied)
        else { return [] }
        slot.staged = version
        self.slots[name] = slot
        return []
    }

    // MARK: - Archiving

    /// Starts archiving `name` (ignored unless this node serves it and does nothing else with it).
    public mutating func startArchive(_ name: String) -> [Action] {
        guard let entry = self.slots[name]?.entry, self.admission(name, applied: entry) == .serve,
            self.slots[name]?.task == nil
        else { return [] }
        self.slots[name]?.task = .archiving(.beginning)
        return [.propose(name, Self.guarded(entry, .beginArchive(name: name, epoch: entry.epoch)))]
    }

    /// The files are in the archive.
    public mutating func archived(_ name: String) -> [Action] {
        guard var slot = self.slots[name], case .archiving(.archiving) = slot.task, let entry = slot.entry else {
            return []
        }
        slot.copy = nil
        slot.task = .archiving(.finishing)
        self.slots[name] = slot
        return [.propose(name, Self.guarded(entry, .finishArchive(name: name, epoch: entry.epoch)))]
    }

    private mutating func continueArchive(_ name: String, entry: NamespaceEntry) -> [Action] {
        guard var slot = self.slots[name] else { return [] }
        slot.fenced = true
        if slot.copy == nil {
            slot.task = .archiving(.finishing)
            self.slots[name] = slot
            return [.propose(name, Self.guarded(entry, .finishArchive(name: name, epoch: entry.epoch)))]
        }
        slot.task = .archiving(.draining)
        self.slots[name] = slot
        return slot.inFlight == 0 ? self.drained(name) : []
    }

    // MARK: - The directory

    /// The directory entry of `name` as this node just applied it (nil: it no longer exists).
    public mutating func applied(_ name: String, _ entry: NamespaceEntry?) -> [Action] {
        self.slots[name, default: Slot()].entry = entry
        let actions = self.settle(name) + self.archiveIfBegun(name)
        self.forgetIfIdle(name)
        return actions
    }

    /// The directory began archiving a namespace this node owns (whoever proposed it, whenever):
    /// the archive goes on, whatever else this node was doing with it. A move from this version
    /// can no longer apply (moves need an active namespace), so sealed files are held again.
    private mutating func archiveIfBegun(_ name: String) -> [Action] {
        guard let slot = self.slots[name], let entry = slot.entry, entry.owner == self.node,
            entry.state == .archiving
        else { return [] }
        switch slot.task {
        case .archiving(.draining), .archiving(.archiving), .archiving(.finishing): return []
        case .moving, .reclaiming:
            if self.mutations.contains(.archiveOnlyWhenIdle) { return [] }
        default: break
        }
        var actions: [Action] = []
        if case .sealed(let version) = slot.copy, version == Version(entry) {
            self.slots[name]?.copy = .held(version)
            actions.append(.unseal(name, version))
        }
        return actions + self.continueArchive(name, entry: entry)
    }

    /// Brings the local copy in line with the applied entry.
    private mutating func settle(_ name: String) -> [Action] {
        guard var slot = self.slots[name] else { return [] }
        guard let entry = slot.entry else {
            guard slot.copy != nil || slot.staged != nil || slot.task != nil else { return [] }
            self.slots[name] = Slot(inFlight: slot.inFlight)
            return [.drop(name, keeping: nil), .release(name)]
        }
        let current = Version(entry)
        if entry.owner != self.node {
            // Owned elsewhere: whatever is here is stale (a move applied, or staging never used),
            // except staging of the next version (a move to this node in progress).
            let keeping = slot.staged == current.next ? slot.staged : nil
            guard slot.copy != nil || slot.staged != keeping || slot.task != nil else { return [] }
            self.slots[name] = Slot(entry: entry, staged: keeping, inFlight: slot.inFlight)
            return [.drop(name, keeping: keeping), .release(name)]
        }
        if case .sealed(let version) = slot.copy {
            if version == current { return [] }  // the move out is not settled yet
            if version.next == current {
                // This node's reclaim applied (only the owner at a version moves from it), so the
                // move that was lost can never apply: serve the sealed files again.
                slot.copy = .held(current)
                slot.fenced = false
                slot.task = nil
                self.slots[name] = slot
                return [.unseal(name, current), .release(name)]
            }
        }
        if slot.copy == .held(current) { return [] }
        if slot.staged == current {
            slot.copy = .held(current)
            slot.staged = nil
            slot.task = nil
            slot.fenced = false
            self.slots[name] = slot
            return [.install(name, current), .release(name)]
        }
        if entry.epoch == 1, entry.state == .active, slot.copy == nil || slot.copy?.version.createdAt != entry.createdAt
        {
            // Created here (files of an earlier namespace of the same name are not it).
            slot.copy = .held(current)
            slot.task = nil
            slot.fenced = false
            self.slots[name] = slot
            return [.drop(name, keeping: nil), .provision(name, current)]
        }
        return []
    }
}
