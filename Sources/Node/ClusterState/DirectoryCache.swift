import Directory

/// The namespace rows read recently, so routing does not read `directory.db` for every request:
/// at most `capacity` rows, absent names included (a name known not to exist is a row too).
///
/// Two generations approximate least-recently-used at O(1): rows go into the recent one; when it
/// is full it becomes the older one and the previous older one is dropped; a row read from the
/// older one moves back into the recent one. A row is dropped at most `capacity` insertions after
/// its last use, never sooner than `capacity / 2`.
struct DirectoryCache: Sendable {
    /// A cached row: the entry, or nil for a name that does not exist.
    typealias Row = NamespaceEntry?

    let capacity: Int
    private var recent: [String: Row] = [:]
    private var older: [String: Row] = [:]

    init(capacity: Int) {
        precondition(capacity >= 2, "the directory cache holds at least two rows")
        self.capacity = capacity
    }

    var count: Int { self.recent.count + self.older.count }

    /// The cached row of `name` (`.some(nil)`: known absent), or nil when it is not cached.
    mutating func get(_ name: String) -> Row? {
        if let row = self.recent[name] { return row }
        guard let row = self.older.removeValue(forKey: name) else { return nil }
        self.put(name, row)
        return row
    }

    /// Caches `row` as the current row of `name`.
    mutating func put(_ name: String, _ row: Row) {
        self.older[name] = nil
        self.recent[name] = .some(row)
        if self.recent.count >= self.capacity / 2 {
            self.older = self.recent
            self.recent = [:]
        }
    }

    mutating func removeAll() {
        self.recent = [:]
        self.older = [:]
    }
}
