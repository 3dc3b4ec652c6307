import Membership
import Testing

@testable import Node

/// One holder handing one namespace to one target, driven by `HandoffStateMachine` exactly as
/// `Cluster.handOff` drives it, through lost requests, lost answers, failed seals, foreign fences and
/// holder crashes at any step, with clients writing whenever the namespace is served. Every run is
/// replayable from its seed.
struct HandoffWorld {
    var random: SplitMix64
    let loss: Double
    let crash: Double

    // The holder: durable registry record, durable handoff marker, in-memory fence and unresolved set.
    var holderHas = true
    var holderMarked = false
    var holderFenced = false
    var holderUnresolved = false
    var holderWrites: [Int] = []
    // The target: durable registration and its copy.
    var targetHolds = false
    var targetStaged: [Int] = []
    var targetWrites: [Int] = []
    var sealedWrites: [Int]?

    var acknowledged: Set<Int> = []
    var nextWrite = 0
    var violations: [String] = []

    init(seed: UInt64, loss: Double, crash: Double) {
        self.random = SplitMix64(seed: seed)
        self.loss = loss
        self.crash = crash
    }

    mutating func chance(_ p: Double) -> Bool { Double(self.random.next() % 1_000_000) / 1_000_000 < p }

    var holderServes: Bool { self.holderHas && !self.holderFenced && !self.holderUnresolved }

    /// Clients write to whichever node serves; the invariant is checked before every write.
    mutating func clientsWrite() {
        if self.holderServes && self.targetHolds { self.violations.append("two nodes serve the namespace") }
        for _ in 0..<Int(self.random.next() % 3) {
            self.nextWrite += 1
            if self.holderServes {
                self.holderWrites.append(self.nextWrite)
                self.acknowledged.insert(self.nextWrite)
            } else if self.targetHolds {
                self.targetWrites.append(self.nextWrite)
                self.acknowledged.insert(self.nextWrite)
            }
        }
    }

    /// A call whose request or answer may be lost; `effect` runs when the request arrives.
    mutating func call<T>(_ effect: (inout HandoffWorld) -> T) -> T? {
        if self.chance(self.loss) { return nil }
        let result = effect(&self)
        return self.chance(self.loss) ? nil : result
    }

    /// Runs one handoff; returns false if the holder crashed during it.
    mutating func runHandoff() -> Bool {
        var machine = HandoffStateMachine(maxConfirmations: 3)
        var action = machine.start()
        while true {
            self.clientsWrite()
            if self.chance(self.crash) {
                self.restartHolder()
                return false
            }
            switch action {
            case .precopy:
                let copied: Bool? = self.call { world in
                    world.targetStaged = world.holderWrites
                    return true
                }
                action = machine.precopied(copied == true)
            case .fence:
                let claimed = !self.chance(0.05)  // sometimes an archive holds the fence
                if claimed { self.holderFenced = true }
                action = machine.fenced(claimed: claimed, stillHeld: self.holderHas)
            case .seal:
                let ok = !self.chance(0.05)
                if ok {
                    self.holderMarked = true
                    self.sealedWrites = self.holderWrites
                }
                action = machine.sealed(ok)
            case .commit:
                let answer = self.call { world -> HandoffStateMachine.CommitAnswer in
                    guard !world.targetHolds else { return .refused }
                    world.targetHolds = true
                    world.targetWrites = world.sealedWrites!
                    return .accepted
                }
                action = machine.committed(answer ?? .noAnswer)
            case .askHeld:
                action = machine.heldAnswered(self.call { $0.targetHolds })
            case .finish(let outcome):
                switch outcome {
                case .moved:
                    self.holderHas = false
                    self.holderMarked = false
                    self.holderFenced = false
                case .kept:
                    self.holderMarked = false
                    self.holderFenced = false
                case .abandoned(let unfence):
                    if unfence { self.holderFenced = false }
                case .unresolved:
                    self.holderUnresolved = true
                    self.holderFenced = false
                }
                return true
            }
        }
    }

    /// A crash loses the fence and the unresolved set; the marker is durable and is loaded as
    /// unresolved before anything is served (`Cluster.init`).
    mutating func restartHolder() {
        self.holderFenced = false
        self.holderUnresolved = self.holderMarked
    }

    /// The periodic settlement (`Cluster.settleUnresolvedHandoffs`): ask until the target answers.
    mutating func settle() {
        while self.holderUnresolved || self.holderMarked {
            self.clientsWrite()
            guard let held = self.call({ $0.targetHolds }) else { continue }
            if held {
                self.holderHas = false
            }
            self.holderMarked = false
            self.holderUnresolved = false
        }
    }

    mutating func check() {
        let holders = (self.holderHas ? 1 : 0) + (self.targetHolds ? 1 : 0)
        if holders != 1 { self.violations.append("\(holders) holders at the end") }
        let kept = Set(self.holderHas ? self.holderWrites : self.targetWrites)
        let lost = self.acknowledged.subtracting(kept)
        if !lost.isEmpty { self.violations.append("acknowledged writes lost: \(lost.sorted())") }
    }
}

@Suite("Handoff simulation")
struct HandoffSimulationTests {
    @Test(arguments: 0..<2000)
    func oneHolderAndNoLostWrite(seed: Int) {
        var world = HandoffWorld(
            seed: UInt64(seed),
            loss: [0, 0.1, 0.3, 0.6][seed % 4],
            crash: seed % 3 == 0 ? 0.1 : 0
        )
        _ = world.runHandoff()
        world.settle()
        world.clientsWrite()
        world.check()
        #expect(world.violations.isEmpty, "seed \(seed): \(world.violations)")
    }

    @Test func withoutFailuresTheNamespaceMoves() {
        var world = HandoffWorld(seed: 1, loss: 0, crash: 0)
        let finished = world.runHandoff()
        #expect(finished)
        #expect(!world.holderHas && world.targetHolds)
        world.check()
        #expect(world.violations.isEmpty)
    }

    @Test func theStepsComeInOrder() {
        var machine = HandoffStateMachine(maxConfirmations: 2)
        let steps = [
            machine.start(), machine.precopied(true), machine.fenced(claimed: true, stillHeld: true),
            machine.sealed(true), machine.committed(.noAnswer), machine.heldAnswered(nil), machine.heldAnswered(nil),
        ]
        #expect(steps == [.precopy, .fence, .seal, .commit, .askHeld, .askHeld, .finish(.unresolved)])
        var gone = HandoffStateMachine()
        let goneSteps = [gone.start(), gone.precopied(true), gone.fenced(claimed: true, stillHeld: false)]
        #expect(goneSteps.last == .finish(.abandoned(unfence: true)))
        var foreign = HandoffStateMachine()
        let foreignSteps = [foreign.start(), foreign.precopied(true), foreign.fenced(claimed: false, stillHeld: true)]
        #expect(foreignSteps.last == .finish(.abandoned(unfence: false)))
    }
}
