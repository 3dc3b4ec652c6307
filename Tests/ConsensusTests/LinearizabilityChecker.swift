/// A Wing & Gong style linearizability checker (with Lowe's memoization, as in Knossos/Porcupine)
/// for the directory. Operations on different names are independent, so each name is checked on
/// its own (linearizability is compositional).
struct LinearizabilityChecker {
    struct Entry {
        var id: Int
        var key: Int
        var operation: Directory.Operation
        var call: UInt64
        /// nil: no answer was observed ("maybe": it may have taken effect at any time after `call`,
        /// or never).
        var response: UInt64?
        var result: Directory.Result?
    }

    enum Verdict: Equatable {
        case linearizable
        case notLinearizable(key: Int)
        /// The search budget ran out (counted, not a failure).
        case inconclusive
    }

    static func check(_ history: [Entry], budget: Int = 200_000) -> Verdict {
        var inconclusive = false
        for key in 0..<Directory.keys {
            let entries = history.filter { $0.key == key }
            guard entries.count <= 128 else {
                inconclusive = true
                continue
            }
            var search = Search(entries: entries, budget: budget)
            switch search.run() {
            case true: continue
            case false: return .notLinearizable(key: key)
            case nil: inconclusive = true
            }
        }
        return inconclusive ? .inconclusive : .linearizable
    }

    private struct Bits: Hashable {
        var low: UInt64 = 0
        var high: UInt64 = 0
        func contains(_ i: Int) -> Bool { i < 64 ? self.low & (1 << i) != 0 : self.high & (1 << (i - 64)) != 0 }
        func inserting(_ i: Int) -> Bits {
            var copy = self
            if i < 64 { copy.low |= 1 << i } else { copy.high |= 1 << (i - 64) }
            return copy
        }
    }

    private struct Memo: Hashable {
        var done: Bits
        var slot: Directory.Slot?
    }

    private struct Search {
        let entries: [Entry]
        var budget: Int
        var seen: Set<Memo> = []
        let completed: Bits

        init(entries: [Entry], budget: Int) {
            self.entries = entries.sorted { $0.call < $1.call }
            self.budget = budget
            var completed = Bits()
            for (i, entry) in self.entries.enumerated() where entry.response != nil {
                completed = completed.inserting(i)
            }
            self.completed = completed
        }

        /// true: linearizable; false: not; nil: out of budget.
        mutating func run() -> Bool? { self.explore(done: Bits(), slot: nil) }

        private mutating func explore(done: Bits, slot: Directory.Slot?) -> Bool? {
            if done.low & self.completed.low == self.completed.low
                && done.high & self.completed.high == self.completed.high
            {
                return true
            }
            self.budget -= 1
            if self.budget < 0 { return nil }
            // Only an operation called before every pending completed one has returned can go next.
            var horizon = UInt64.max
            for (i, entry) in self.entries.enumerated() where !done.contains(i) {
                if let response = entry.response { horizon = min(horizon, response) }
            }
            var outOfBudget = false
            for (i, entry) in self.entries.enumerated() where !done.contains(i) && entry.call < horizon {
                let (next, result) = Directory.apply(entry.operation, to: slot)
                if let expected = entry.result, expected != result { continue }
                let memo = Memo(done: done.inserting(i), slot: next)
                guard self.seen.insert(memo).inserted else { continue }
                switch self.explore(done: memo.done, slot: next) {
                case true: return true
                case nil: outOfBudget = true
                case false: continue
                }
            }
            return outOfBudget ? nil : false
        }
    }
}
