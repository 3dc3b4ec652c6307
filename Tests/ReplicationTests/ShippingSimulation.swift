import Consensus
import Foundation
import Testing

@testable import Replication

/// A seeded, deterministic world of one owner and two followers shipping a WAL: the owner commits
/// transactions (real WAL frames: salts, the checksum chain, commit sizes) and checkpoints; the
/// network delays, reorders, duplicates and drops messages; followers crash (a write cut short)
/// and restart. The owner decides with `ShipmentPlan` from `WALTail`; followers check positions
/// with `FollowerRules` and frames with `WALTail.appending`, and retire with `newestPages`, as
/// `ReplicaCopies` does on files. Checked at every step: a follower's copy always reads as a state
/// the owner committed (never a mix, never a future), and a copy the owner counts as holding its
/// end reads as the owner's state now; at the end, healed and quiet, every copy is the owner's
/// bytes.
struct ShippingSimulation {
    /// A mistake to build in, to show the checks catch it.
    enum Mutation: Equatable {
        case none
        /// A follower appends wherever a shipment says, not only at its own position.
        case appendAnywhere
        /// The owner continues an empty copy whatever database file it was retired with.
        case ignoreBase
        /// A follower retires whatever part of a generation it holds.
        case retireAnywhere
        /// A follower takes a full copy whatever its copy became since the owner decided.
        case installAnywhere
        /// A follower continues an empty WAL whatever database file it holds.
        case appendToAnyBase
        /// The owner trusts what it retired last after a checkpoint it did not hear the end of.
        case trustStaleRetirement
    }

    static let pageSize = 512

    /// Files as bytes: what a node holds for one namespace.
    struct Files: Equatable {
        var database: [UInt8] = []
        var wal: [UInt8] = []
        var history: String = "h0"
    }

    struct Follower {
        var files = Files()
        var tail = WALTail()
        var up = true
    }

    enum Message {
        case get(to: Int, call: Int)
        /// Bytes continuing a copy at `previous` whose database file is `base`'s (an empty WAL's
        /// position says nothing of which database file it goes with).
        case append(to: Int, call: Int, previous: WALPosition, base: String?, bytes: [UInt8])
        case retire(to: Int, call: Int, end: WALPosition, history: String)
        /// A full copy, for a follower whose copy was `expected` when the owner decided.
        case install(to: Int, call: Int, files: Files, expected: ShipmentPlan.Copy)
        /// A follower's answer to call `call`: its copy (nil: refused or timed out: ask again).
        case answer(from: Int, call: Int, copy: ShipmentPlan.Copy?)

        var follower: Int {
            switch self {
            case .get(let index, _), .append(let index, _, _, _, _), .retire(let index, _, _, _),
                .install(let index, _, _, _),
                .answer(let index, _, _):
                index
            }
        }

        var call: Int {
            switch self {
            case .get(_, let call), .append(_, let call, _, _, _), .retire(_, let call, _, _),
                .install(_, let call, _, _),
                .answer(_, let call, _):
                call
            }
        }
    }

    var random: SplitMix64
    let mutation: Mutation
    var owner = Files()
    var ownerTail = WALTail()
    var retired: ShipmentPlan.Retired?
    /// The history the checkpoint that `retired` names left: a retirement holds only while the
    /// history is still that one (`WALShipper` keys it by the history file's identity).
    var retiredHistory: String?
    var followers = [Follower(), Follower()]
    /// What the owner last heard of each follower's copy, and whether it awaits an answer.
    var known: [ShipmentPlan.Copy?] = [nil, nil]
    var waiting = [false, false]
    /// The call each follower's answer must name (a late answer to an earlier call is dropped, as
    /// an HTTP client drops the answer of a call it gave up on).
    var calls = [0, 0]
    var network: [(at: Int, message: Message)] = []
    var now = 0
    var salt1: UInt32 = 1
    var checkpoints = 0
    /// The database file's pages as of every commit the owner made (what a copy may read as).
    var committedStates: Set<UInt64> = [ShippingSimulation.digest([])]
    /// The owner's database file (alone) as each checkpoint left it, by the history it wrote.
    var databaseAtHistory: [String: UInt64] = ["h0": ShippingSimulation.digest([])]
    /// While healing, nothing crashes any more.
    var healing = false
    /// What happened, newest last (the tail of it explains a failing seed).
    var trace: [String] = []
    var failures: [String] = [] {
        didSet { if self.failureTrace.isEmpty { self.failureTrace = self.trace } }
    }
    var failureTrace: [String] = []

    init(seed: UInt64, mutation: Mutation = .none) {
        self.random = SplitMix64(seed: seed)
        self.mutation = mutation
    }

    // MARK: - The owner

    mutating func commit() {
        var database = Self.read(self.owner)
        let pages = Int(self.random.next() % 3) + 1
        var frames: [(UInt32, [UInt8])] = []
        for _ in 0..<pages {
            let count = database.count / Self.pageSize
            let number = UInt32(self.random.next() % UInt64(count + 2) + 1)
            let byte = UInt8(truncatingIfNeeded: self.random.next())
            let page = [UInt8](repeating: byte, count: Self.pageSize)
            if Int(number) > count {
                database += [UInt8](repeating: 0, count: (Int(number) - count) * Self.pageSize)
            }
            database.replaceSubrange((Int(number) - 1) * Self.pageSize..<Int(number) * Self.pageSize, with: page)
            frames.append((number, page))
        }
        // Sometimes the transaction shrinks the database (a vacuum-like truncation).
        if database.count > 4 * Self.pageSize && self.random.next() % 8 == 0 {
            database.removeLast(Self.pageSize)
            frames.removeAll { Int($0.0) * Self.pageSize > database.count }
            if frames.isEmpty { frames.append((1, Array(database[0..<Self.pageSize]))) }
        }
        self.appendFrames(frames, databasePages: UInt32(database.count / Self.pageSize))
        self.ownerTail.advance(size: self.owner.wal.count) { offset, count in
            Array(self.owner.wal[offset..<min(offset + count, self.owner.wal.count)])
        }
        self.committedStates.insert(Self.digest(Self.read(self.owner)))
        for index in self.followers.indices { self.checkCounted(index) }
    }

    mutating func appendFrames(_ frames: [(UInt32, [UInt8])], databasePages: UInt32) {
        var running: WALChecksum
        if self.owner.wal.isEmpty {
            var header = [UInt8]()
            for word in [0x377f_0682, 3_007_000, UInt32(Self.pageSize), UInt32(self.checkpoints)] as [UInt32] {
                header += Self.bigEndian(word)
            }
            self.salt1 &+= 1
            header += Self.bigEndian(self.salt1) + Self.bigEndian(UInt32(truncatingIfNeeded: self.random.next()))
            running = .zero
            header.withUnsafeBytes { running.update(UnsafeRawBufferPointer(rebasing: $0[0..<24]), bigEndian: false) }
            header += Self.bigEndian(running.s1) + Self.bigEndian(running.s2)
            self.owner.wal = header
        } else {
            running = self.ownerTail.position.checksum
        }
        let salts = Array(self.owner.wal[16..<24])
        for (index, (number, page)) in frames.enumerated() {
            let commit = index == frames.count - 1 ? databasePages : 0
            var frame = Self.bigEndian(number) + Self.bigEndian(commit) + salts
            frame.withUnsafeBytes { running.update(UnsafeRawBufferPointer(rebasing: $0[0..<8]), bigEndian: false) }
            page.withUnsafeBytes { running.update($0, bigEndian: false) }
            frame += Self.bigEndian(running.s1) + Self.bigEndian(running.s2) + page
            self.owner.wal += frame
        }
    }

    /// A checkpoint, when every reachable follower holds the WAL's end (as `prepareCheckpoint`:
    /// without the output gate this saves full copies, and is not yet what keeps writes safe).
    mutating func checkpoint() {
        for index in self.followers.indices where self.followers[index].up {
            guard let copy = self.known[index], copy.position == self.ownerTail.position else { return }
        }
        let end = self.ownerTail.position
        self.owner = Self.retire(self.owner, tail: self.ownerTail, history: "h\(self.checkpoints + 1)")
        self.checkpoints += 1
        self.databaseAtHistory[self.owner.history] = Self.digest(self.owner.database)
        self.ownerTail = WALTail()
        // Sometimes the node does not hear the checkpoint's answer: it keeps what it retired before.
        if self.random.next() % 5 != 0 {
            self.retired = end.generation == nil ? nil : ShipmentPlan.Retired(end: end)
            self.retiredHistory = self.owner.history
        }
        for index in self.followers.indices { self.checkCounted(index) }
    }

    /// What the owner retired last, while the history is still the one that checkpoint left.
    var currentRetirement: ShipmentPlan.Retired? {
        self.mutation == .trustStaleRetirement || self.retiredHistory == self.owner.history ? self.retired : nil
    }

    /// What the owner sends a follower next (when not awaiting its answer).
    mutating func ship(_ index: Int) {
        guard !self.waiting[index] else { return }
        let call = self.calls[index] + 1
        guard let copy = self.known[index] else {
            self.send(.get(to: index, call: call), for: index)
            return
        }
        let base = self.mutation == .ignoreBase && copy.position.offset == 0 ? copy.base ?? "" : self.owner.history
        switch ShipmentPlan.next(tail: self.ownerTail, base: base, retired: self.currentRetirement, copy: copy) {
        case .upToDate:
            return
        case .append(let from):
            let previous =
                from == 0
                ? WALPosition.empty
                : WALPosition(
                    generation: self.ownerTail.position.generation,
                    offset: from,
                    checksum: self.ownerTail.commits[from] ?? .zero
                )
            let end = self.ownerTail.position.offset
            self.send(
                .append(
                    to: index,
                    call: call,
                    previous: previous,
                    base: copy.base,
                    bytes: Array(self.owner.wal[from..<end])
                ),
                for: index
            )
        case .retire:
            self.send(
                .retire(to: index, call: call, end: self.currentRetirement!.end, history: self.owner.history),
                for: index
            )
        case .install:
            var files = self.owner
            files.wal = Array(files.wal[..<self.ownerTail.position.offset])
            self.send(.install(to: index, call: call, files: files, expected: copy), for: index)
        }
    }

    mutating func send(_ message: Message, for index: Int) {
        self.waiting[index] = true
        self.calls[index] = message.call
        // The call gives up after a while whatever happens to it.
        self.network.append((self.now + 12, .answer(from: index, call: message.call, copy: nil)))
        self.deliver(message)
    }

    mutating func deliver(_ message: Message) {
        let roll = self.random.next() % 20
        if roll == 0 { return }  // lost
        let delay = Int(self.random.next() % 6)
        self.network.append((self.now + delay, message))
        // Duplicated, sometimes much later (a call given up on and still processed).
        if roll <= 2 { self.network.append((self.now + delay + Int(self.random.next() % 30), message)) }
    }

    // MARK: - Followers

    mutating func receive(_ message: Message) {
        self.trace.append(
            "t=\(self.now) \(Self.describe(message)) f0=\(self.followers[0].tail.position) f1=\(self.followers[1].tail.position) owner=\(self.ownerTail.position)"
        )
        if self.trace.count > 60 { self.trace.removeFirst() }
        switch message {
        case .answer(let from, let call, let copy):
            guard self.waiting[from], call == self.calls[from] else { return }  // a call given up on
            self.known[from] = copy
            self.waiting[from] = false
            self.checkCounted(from)
        case .get(let to, let call):
            guard self.followers[to].up else { return }
            self.answer(to, call, ok: true)
        case .append(let to, let call, let previous, let base, let bytes):
            guard self.followers[to].up else { return }
            var follower = self.followers[to]
            if self.mutation == .appendAnywhere {
                // The mistake: the bytes go where the shipment says, unchecked.
                follower.files.wal = Array(follower.files.wal.prefix(previous.offset)) + bytes
                follower.tail = Self.tail(of: follower.files.wal)
                follower.files.wal = Array(follower.files.wal.prefix(follower.tail.position.offset))
                self.followers[to] = follower
                self.checkFollower(to)
                return self.answer(to, call, ok: true)
            }
            guard FollowerRules.check(follower.tail.position, continues: previous) == nil,
                self.mutation == .appendToAnyBase || follower.files.history == base,
                let next = try? follower.tail.appending(bytes)
            else { return self.answer(to, call, ok: false) }
            follower.tail = next
            // A crash can cut the write short: the torn bytes are never acknowledged.
            if !self.healing && self.random.next() % 25 == 0 {
                follower.files.wal += Array(bytes.prefix(Int(self.random.next() % UInt64(bytes.count + 1))))
                follower.up = false
                self.followers[to] = follower
                return
            }
            follower.files.wal += bytes
            self.followers[to] = follower
            self.checkFollower(to)
            self.answer(to, call, ok: true)
        case .retire(let to, let call, let end, let history):
            guard self.followers[to].up else { return }
            var follower = self.followers[to]
            guard self.mutation == .retireAnywhere || FollowerRules.check(follower.tail.position, continues: end) == nil
            else {
                return self.answer(to, call, ok: false)
            }
            follower.files = Self.retire(follower.files, tail: follower.tail, history: history)
            follower.tail = WALTail()
            self.followers[to] = follower
            self.checkFollower(to)
            self.answer(to, call, ok: true)
        case .install(let to, let call, let files, let expected):
            guard self.followers[to].up else { return }
            // A late install (its call given up on) must not replace a copy that moved on since.
            let current = ShipmentPlan.Copy(
                position: self.followers[to].tail.position,
                base: self.followers[to].files.history
            )
            if self.mutation != .installAnywhere && current != expected { return self.answer(to, call, ok: false) }
            self.followers[to].files = files
            self.followers[to].tail = Self.tail(of: files.wal)
            self.checkFollower(to)
            self.answer(to, call, ok: true)
        }
    }

    mutating func answer(_ index: Int, _ call: Int, ok: Bool) {
        let follower = self.followers[index]
        let copy = ShipmentPlan.Copy(position: follower.tail.position, base: follower.files.history)
        self.deliver(.answer(from: index, call: call, copy: ok ? copy : nil))
    }

    mutating func restart(_ index: Int) {
        var follower = self.followers[index]
        follower.tail = Self.tail(of: follower.files.wal)
        // Bytes past the last commit are cut (what `ReplicaCopies` does when it reads a copy).
        follower.files.wal = Array(follower.files.wal.prefix(follower.tail.position.offset))
        follower.up = true
        self.followers[index] = follower
        self.checkFollower(index)
    }

    static func describe(_ message: Message) -> String {
        switch message {
        case .get(let to, let call): "get(\(to)) #\(call)"
        case .append(let to, let call, let previous, let base, let bytes):
            "append(\(to)) #\(call) after \(previous) +\(bytes.count)"
        case .retire(let to, let call, let end, let history): "retire(\(to)) #\(call) at \(end) \(history)"
        case .install(let to, let call, let files, let expected):
            "install(\(to)) #\(call) wal \(files.wal.count) \(files.history) expecting \(expected.position)"
        case .answer(let from, let call, let copy):
            "answer(\(from)) #\(call) \(copy.map { "\($0.position) \($0.base ?? "-")" } ?? "none")"
        }
    }

    // MARK: - Files

    /// SQLite's checkpoint: the newest version of every page into the database file, the file cut
    /// to the last commit's size, the WAL emptied; nothing when no transaction committed.
    static func retire(_ files: Files, tail: WALTail, history: String) -> Files {
        var next = files
        if tail.databasePages > 0 {
            let pages = tail.newestPages { offset, count in
                Array(files.wal[offset..<min(offset + count, files.wal.count)])
            }
            let size = Int(tail.databasePages) * Self.pageSize
            if next.database.count < size { next.database += [UInt8](repeating: 0, count: size - next.database.count) }
            for (number, offset) in pages where number <= tail.databasePages {
                next.database.replaceSubrange(
                    (Int(number) - 1) * Self.pageSize..<Int(number) * Self.pageSize,
                    with: files.wal[offset..<(offset + Self.pageSize)]
                )
            }
            next.database = Array(next.database.prefix(size))
        }
        next.wal = []
        next.history = history
        return next
    }

    /// The database as these files read: the file with the WAL's committed frames over it.
    static func read(_ files: Files) -> [UInt8] {
        Self.retire(files, tail: Self.tail(of: files.wal), history: files.history).database
    }

    static func tail(of wal: [UInt8]) -> WALTail { WALTail(wal: wal[...]) }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [
            UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8),
            UInt8(truncatingIfNeeded: value),
        ]
    }

    // MARK: - Running

    /// A copy reads as a state the owner committed (checked whenever it changes).
    mutating func checkFollower(_ index: Int) {
        let files = self.followers[index].files
        if !self.committedStates.contains(Self.digest(Self.read(files))) {
            self.failures.append("t=\(self.now): follower \(index) reads as a state the owner never committed")
        }
        // Its database file alone is the owner's as of the checkpoint its history names.
        if self.databaseAtHistory[files.history] != Self.digest(files.database) {
            self.failures.append("t=\(self.now): follower \(index)'s database file is not the one its history names")
        }
    }

    /// A copy the owner counts as holding its end reads as the owner's state now (checked whenever
    /// the owner learns of it, and whenever the owner's state changes).
    mutating func checkCounted(_ index: Int) {
        let follower = self.followers[index]
        guard let copy = self.known[index], !self.waiting[index], follower.up, copy.position == follower.tail.position,
            ShipmentPlan.next(
                tail: self.ownerTail,
                base: self.owner.history,
                retired: self.currentRetirement,
                copy: copy
            )
                == .upToDate
        else { return }
        if Self.digest(Self.read(follower.files)) != Self.digest(Self.read(self.owner)) {
            self.failures.append("t=\(self.now): follower \(index) counted as holding the owner's end does not")
        }
    }

    /// FNV-1a over a database image: states are compared by digest.
    static func digest(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    mutating func step() {
        self.now += 1
        switch self.random.next() % 10 {
        case 0, 1, 2: self.commit()
        case 3: self.checkpoint()
        case 4:
            let index = Int(self.random.next() % 2)
            if self.followers[index].up && self.random.next() % 4 == 0 {
                self.followers[index].up = false
            } else if !self.followers[index].up {
                self.restart(index)
            }
        case 5 where self.random.next() % 10 == 0:
            self.retired = nil  // the owner restarted: it forgets what it retired and its followers' copies
            self.known = [nil, nil]
        default: break
        }
        for index in self.followers.indices { self.ship(index) }
        let due = self.network.enumerated().filter { $0.element.at <= self.now }.map(\.offset)
        for offset in due.reversed() {
            let message = self.network.remove(at: offset).message
            self.receive(message)
        }
    }

    /// Runs `steps` steps, then heals everything and lets shipping settle.
    mutating func run(steps: Int) {
        for _ in 0..<steps { self.step() }
        self.healing = true
        for index in self.followers.indices where !self.followers[index].up { self.restart(index) }
        for _ in 0..<400 {
            self.now += 1
            for index in self.followers.indices { self.ship(index) }
            let due = self.network.enumerated().filter { $0.element.at <= self.now }.map(\.offset)
            for offset in due.reversed() { self.receive(self.network.remove(at: offset).message) }
        }
        for (index, follower) in self.followers.enumerated() {
            var owner = self.owner
            owner.wal = Array(owner.wal.prefix(self.ownerTail.position.offset))
            if follower.files != owner {
                self.failures.append(
                    "end: follower \(index) does not hold the owner's files (database \(follower.files.database == owner.database), WAL \(follower.files.wal.count)/\(owner.wal.count), history \(follower.files.history)/\(owner.history), known \(String(describing: self.known[index])), waiting \(self.waiting[index]), tail \(self.ownerTail.position))"
                )
            }
        }
    }
}

@Suite("Shipping simulation")
struct ShippingSimulationTests {
    static var seeds: Int { Int(Environment.value("SHIPPING_SEEDS") ?? "") ?? 10_000 }
    static var start: UInt64 { UInt64(Environment.value("SHIPPING_SEED_START") ?? "") ?? 1 }

    @Test func copiesAreAlwaysACommittedStateAndEndAsTheOwnersBytes() {
        var failed: [String] = []
        for seed in Self.start..<(Self.start + UInt64(Self.seeds)) {
            var world = ShippingSimulation(seed: seed)
            world.run(steps: 300)
            if let first = world.failures.first {
                failed.append("seed \(seed): \(first)\n" + world.failureTrace.suffix(30).joined(separator: "\n"))
            }
            if failed.count >= 5 { break }
        }
        #expect(failed.isEmpty, "\(failed)")
    }

    /// Each built-in mistake loses or mixes data in some seed: the checks bite.
    @Test(arguments: [
        ShippingSimulation.Mutation.appendAnywhere, .ignoreBase, .retireAnywhere, .installAnywhere, .appendToAnyBase,
        .trustStaleRetirement,
    ])
    func aMistakeIsCaught(_ mutation: ShippingSimulation.Mutation) {
        var caught: UInt64?
        for seed in UInt64(1)...20000 {
            var world = ShippingSimulation(seed: seed, mutation: mutation)
            world.run(steps: 300)
            if !world.failures.isEmpty {
                caught = seed
                break
            }
        }
        #expect(caught != nil, "no seed caught \(mutation)")
        print("shipping mutation \(mutation) caught by seed \(caught.map(String.init) ?? "none")")
    }
}

enum Environment {
    static func value(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }
}
