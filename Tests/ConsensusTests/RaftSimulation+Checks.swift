@testable import Consensus

/// The safety properties of Raft (figure 3 of the paper), checked after every event, and the
/// linearizability of the client history, checked at the end.
extension RaftSimulation {
    func fail(_ reason: String) {
        guard self.violation == nil else { return }
        self.violation = "t=\(self.now)ms event \(self.eventCount): \(reason)"
        self.log("VIOLATION \(reason)")
    }

    func grow(_ index: Int) {
        while self.committedTerm.count <= index {
            self.committedTerm.append(0)
            self.commitTermOf.append(.max)
        }
    }

    func check(_ node: Int) {
        guard self.violation == nil, self.nodes[node].raft != nil else { return }
        _ = self.nodes[node].inspect { self.check(node, &$0) }
    }

    private func check(_ node: Int, _ raft: inout RaftNode) {
        let name = "n\(node + 1)"
        // Election safety: at most one leader per term.
        if raft.role == .leader {
            if let other = self.leaderOfTerm[raft.term], other != raft.id {
                return self.fail("two leaders in term \(raft.term): \(other) and \(raft.id)")
            }
            self.leaderOfTerm[raft.term] = raft.id
        }
        let logChanged = raft.log.version != self.marks[node].version
        let becameLeader =
            raft.role == .leader && (self.marks[node].role != .leader || self.marks[node].term != raft.term)
        if logChanged {
            // Log matching: an (index, term) pair always denotes the same entry with the same predecessor;
            // and a committed position never holds another term.
            var previousTerm = raft.log.base.term
            for entry in raft.log.entries {
                let key = PositionKey(index: entry.index, term: entry.term)
                if let known = self.entryAt[key] {
                    if known.entry != entry || known.previousTerm != previousTerm {
                        return self.fail("log matching: \(name) has \(entry) after term \(previousTerm), seen \(known)")
                    }
                } else {
                    self.entryAt[key] = (entry, previousTerm)
                }
                let index = Int(entry.index)
                if entry.index <= raft.commitIndex, index < self.committedTerm.count, self.committedTerm[index] != 0,
                    self.committedTerm[index] != entry.term
                {
                    return self.fail("committed entry \(index) changed on \(name): term \(entry.term)")
                }
                previousTerm = entry.term
            }
            self.marks[node].version = raft.log.version
        }
        // Every index a replica declares committed holds the same term everywhere.
        if raft.commitIndex > self.marks[node].commit {
            self.grow(Int(raft.commitIndex))
            for index in (self.marks[node].commit + 1)...raft.commitIndex {
                guard let term = raft.term(at: index) else { continue }
                let position = Int(index)
                if self.committedTerm[position] == 0 {
                    self.committedTerm[position] = term
                } else if self.committedTerm[position] != term {
                    return self.fail(
                        "\(name) commits term \(term) at \(index), committed was \(self.committedTerm[position])"
                    )
                }
                if raft.term < self.commitTermOf[position] {
                    self.commitTermOf[position] = raft.term
                    if let bucket = self.committedInTerm.firstIndex(where: { $0.term == raft.term }) {
                        self.committedInTerm[bucket].index = max(self.committedInTerm[bucket].index, position)
                    } else {
                        self.committedInTerm.append((raft.term, position))
                    }
                }
            }
            self.marks[node].commit = raft.commitIndex
        }
        // Leader completeness: a leader of term T holds every entry committed in an earlier term.
        if raft.role == .leader && (logChanged || becameLeader) {
            // The highest index committed in an earlier term (by log matching, that covers the rest).
            var index = 0
            for bucket in self.committedInTerm where bucket.term < raft.term { index = max(index, bucket.index) }
            if index > 0 && UInt64(index) >= raft.log.base.index
                && raft.term(at: UInt64(index)) != self.committedTerm[index]
            {
                return self.fail(
                    "leader completeness: \(name) leads term \(raft.term) without entry \(index) "
                        + "(term \(self.committedTerm[index])) committed by term \(self.commitTermOf[index])"
                )
            }
        }
        self.marks[node].term = raft.term
        self.marks[node].role = raft.role
    }

    func checkHistory() {
        let entries = self.historyIndex.compactMap { $0.map { self.history[$0] } }
        self.stats.completed = entries.filter { $0.response != nil }.count
        self.stats.maybe = entries.count - self.stats.completed
        switch LinearizabilityChecker.check(entries) {
        case .linearizable:
            break
        case .inconclusive:
            self.stats.inconclusive += 1
        case .notLinearizable(let key):
            self.fail("history of key \(key) is not linearizable")
            for entry in entries where entry.key == key {
                self.log(
                    "  #\(entry.id) \(entry.operation) [\(entry.call), \(entry.response.map(String.init) ?? "?")] "
                        + "-> \(entry.result.map { "\($0)" } ?? "?")"
                )
            }
        }
    }
}
