/// A binary min-heap of simulation events ordered by (time, sequence): equal times keep their
/// scheduling order, so a run is a pure function of its seed. The heap holds plain numbers; the
/// payloads stay put in slots (moving them around on every sift dominated the simulation's time).
struct EventQueue {
    typealias Payload = RaftSimulation.Event

    private struct Key {
        var time: Int64
        var sequence: UInt64
        var slot: Int

        static func < (a: Key, b: Key) -> Bool {
            a.time < b.time || (a.time == b.time && a.sequence < b.sequence)
        }
    }

    private var heap: [Key] = []
    private var payloads: [Payload?] = []
    private var freeSlots: [Int] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { self.heap.isEmpty }
    var count: Int { self.heap.count }

    mutating func push(_ time: Int64, _ payload: Payload) {
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
            self.payloads[slot] = payload
        } else {
            slot = self.payloads.count
            self.payloads.append(payload)
        }
        self.heap.append(Key(time: time, sequence: self.nextSequence, slot: slot))
        self.nextSequence += 1
        var child = self.heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.heap[child] < self.heap[parent] else { break }
            self.heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: Int64, payload: Payload)? {
        guard !self.heap.isEmpty else { return nil }
        self.heap.swapAt(0, self.heap.count - 1)
        let top = self.heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.heap.count && self.heap[left] < self.heap[smallest] { smallest = left }
            if right < self.heap.count && self.heap[right] < self.heap[smallest] { smallest = right }
            guard smallest != parent else { break }
            self.heap.swapAt(parent, smallest)
            parent = smallest
        }
        let payload = self.payloads[top.slot].take()!
        self.freeSlots.append(top.slot)
        return (top.time, payload)
    }
}
