/// A binary min-heap (the simulator's message queue).
struct Heap<Element: Comparable> {
    private var items: [Element] = []

    var isEmpty: Bool { self.items.isEmpty }
    var count: Int { self.items.count }
    var min: Element? { self.items.first }

    mutating func insert(_ element: Element) {
        self.items.append(element)
        var child = self.items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.items[child] < self.items[parent] else { break }
            self.items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popMin() -> Element? {
        guard !self.items.isEmpty else { return nil }
        self.items.swapAt(0, self.items.count - 1)
        let result = self.items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.items.count && self.items[left] < self.items[smallest] { smallest = left }
            if right < self.items.count && self.items[right] < self.items[smallest] { smallest = right }
            if smallest == parent { break }
            self.items.swapAt(parent, smallest)
            parent = smallest
        }
        return result
    }
}
