import Directory
import Testing

@testable import Ownership

@Suite("Ownership machine")
struct OwnershipMachineTests {
    static func entry(_ name: String, owner: String, epoch: UInt64 = 1) -> NamespaceEntry {
        NamespaceEntry(name: name, owner: owner, epoch: epoch, origin: .explicit, locked: false, createdAt: 7)
    }

    /// A node keeps slots only for what it owns or has something of: a directory of thousands of
    /// namespaces owned elsewhere costs it nothing, and it still routes and takes moves of them.
    @Test func namespacesOwnedElsewhereWithNothingHereHaveNoSlot() {
        var directory: [String: NamespaceEntry] = [:]
        for index in 0..<1_000 { directory["far-\(index)"] = Self.entry("far-\(index)", owner: "b") }
        directory["mine"] = Self.entry("mine", owner: "a")
        var machine = OwnershipMachine(
            node: "a",
            copies: ["mine": .held(.init(createdAt: 7, epoch: 1))],
            staged: [:],
            directory: directory
        )
        #expect(machine.start().isEmpty)
        #expect(machine.slotCount == 1)
        let far = Self.entry("far-1", owner: "b", epoch: 3)
        #expect(machine.admission("far-1", applied: far) == .forward(owner: "b"))
        #expect(machine.admission("nowhere", applied: nil) == .absent)
        #expect(machine.admit("mine", applied: directory["mine"]) == .serve)
        #expect(machine.finished("mine").isEmpty)

        // A move of far-1 to this node: only the next version is staged, and the slot stays
        // until the move applies and installs it.
        #expect(!machine.acceptsTransfer("far-1", .init(createdAt: 7, epoch: 3), applied: far))
        #expect(machine.acceptsTransfer("far-1", .init(createdAt: 7, epoch: 4), applied: far))
        #expect(machine.staged("far-1", .init(createdAt: 7, epoch: 4), applied: far).isEmpty)
        #expect(machine.slotCount == 2)
        let moved = Self.entry("far-1", owner: "a", epoch: 4)
        #expect(
            machine.applied("far-1", moved) == [.install("far-1", .init(createdAt: 7, epoch: 4)), .release("far-1")]
        )
        #expect(machine.admission("far-1", applied: moved) == .serve)

        // Applying an entry owned elsewhere that this node has nothing of leaves no slot behind.
        #expect(machine.applied("far-2", Self.entry("far-2", owner: "c", epoch: 2)).isEmpty)
        #expect(machine.slotCount == 2)
        // An entry owned here that the machine has not applied yet is not taken from the caller.
        #expect(machine.admission("new", applied: Self.entry("new", owner: "a")) == .absent)
    }
}
