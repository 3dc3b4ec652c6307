/// A decoder for the portable RoaringBitmap serialization (32-bit), the format of
/// `server_pages_selector`. Only membership tests are needed.
struct RoaringBitmap: Equatable {
    struct FormatError: Error, CustomStringConvertible {
        var description: String
    }

    /// Sorted containers keyed by the high 16 bits.
    private var containers: [(key: UInt16, container: Container)] = []

    enum Container: Equatable {
        case array([UInt16])
        case bitmap([UInt64])
        case runs([(start: UInt16, lengthMinusOne: UInt16)])

        static func == (lhs: Container, rhs: Container) -> Bool {
            switch (lhs, rhs) {
            case (.array(let a), .array(let b)): return a == b
            case (.bitmap(let a), .bitmap(let b)): return a == b
            case (.runs(let a), .runs(let b)):
                return a.count == b.count
                    && zip(a, b).allSatisfy { $0.start == $1.start && $0.lengthMinusOne == $1.lengthMinusOne }
            default: return false
            }
        }

        func contains(_ low: UInt16) -> Bool {
            switch self {
            case .array(let values):
                var lo = 0
                var hi = values.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if values[mid] < low { lo = mid + 1 } else { hi = mid }
                }
                return lo < values.count && values[lo] == low
            case .bitmap(let words):
                return words[Int(low >> 6)] & (1 << UInt64(low & 63)) != 0
            case .runs(let runs):
                for run in runs where low >= run.start {
                    if UInt32(low) <= UInt32(run.start) + UInt32(run.lengthMinusOne) { return true }
                }
                return false
            }
        }
    }

    init(values: [UInt32]) {
        var grouped: [UInt16: [UInt16]] = [:]
        for value in values { grouped[UInt16(value >> 16), default: []].append(UInt16(value & 0xffff)) }
        self.containers = grouped.keys.sorted().map { ($0, .array(Array(Set(grouped[$0]!)).sorted())) }
    }

    func contains(_ value: UInt32) -> Bool {
        let key = UInt16(value >> 16)
        guard let entry = self.containers.first(where: { $0.key == key }) else { return false }
        return entry.container.contains(UInt16(value & 0xffff))
    }

    private static let cookieNoRuns: UInt32 = 12346
    private static let cookieRuns: UInt16 = 12347

    init(portable bytes: [UInt8]) throws(FormatError) {
        var offset = 0
        func u16() throws(FormatError) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw FormatError(description: "truncated roaring bitmap") }
            defer { offset += 2 }
            return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
        }
        func u32() throws(FormatError) -> UInt32 {
            let lo = try u16()
            let hi = try u16()
            return UInt32(lo) | UInt32(hi) << 16
        }
        let cookie = try u32()
        var count: Int
        var runFlags: [UInt8] = []
        let hasRuns: Bool
        if cookie & 0xffff == UInt32(Self.cookieRuns) {
            hasRuns = true
            count = Int(cookie >> 16) + 1
            let flagBytes = (count + 7) / 8
            guard offset + flagBytes <= bytes.count else { throw FormatError(description: "truncated run flags") }
            runFlags = Array(bytes[offset..<(offset + flagBytes)])
            offset += flagBytes
        } else if cookie == Self.cookieNoRuns {
            hasRuns = false
            count = Int(try u32())
        } else {
            throw FormatError(description: "unknown roaring cookie \(cookie)")
        }
        guard count <= 65536 else { throw FormatError(description: "too many containers") }
        var headers: [(key: UInt16, cardinality: Int)] = []
        for _ in 0..<count {
            let key = try u16()
            let cardinality = Int(try u16()) + 1
            headers.append((key, cardinality))
        }
        // Offsets are present without runs, or with runs when there are at least 4 containers.
        if !hasRuns || count >= 4 {
            offset += 4 * count
        }
        var previousKey: Int = -1
        for (index, header) in headers.enumerated() {
            guard Int(header.key) > previousKey else { throw FormatError(description: "unsorted containers") }
            previousKey = Int(header.key)
            let isRun = hasRuns && runFlags[index / 8] & (1 << UInt8(index % 8)) != 0
            let container: Container
            if isRun {
                let runCount = Int(try u16())
                var runs: [(start: UInt16, lengthMinusOne: UInt16)] = []
                runs.reserveCapacity(runCount)
                for _ in 0..<runCount { runs.append((try u16(), try u16())) }
                container = .runs(runs)
            } else if header.cardinality > 4096 {
                var words: [UInt64] = []
                words.reserveCapacity(1024)
                for _ in 0..<1024 {
                    let lo = try u32()
                    let hi = try u32()
                    words.append(UInt64(lo) | UInt64(hi) << 32)
                }
                container = .bitmap(words)
            } else {
                var values: [UInt16] = []
                values.reserveCapacity(header.cardinality)
                for _ in 0..<header.cardinality { values.append(try u16()) }
                container = .array(values)
            }
            self.containers.append((header.key, container))
        }
    }

    /// Serializes in the portable format without run containers (tests and benchmark clients).
    func portableBytes() -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { out.append(UInt8(v & 0xff)); out.append(UInt8(v >> 8)) }
        func u32(_ v: UInt32) { u16(UInt16(v & 0xffff)); u16(UInt16(v >> 16)) }
        u32(Self.cookieNoRuns)
        u32(UInt32(self.containers.count))
        var sizes: [Int] = []
        for entry in self.containers {
            guard case .array(let values) = entry.container else { fatalError("only array containers are serialized") }
            u16(entry.key)
            u16(UInt16(values.count - 1))
            sizes.append(values.count * 2)
        }
        var position = out.count + 4 * self.containers.count
        for size in sizes {
            u32(UInt32(position))
            position += size
        }
        for entry in self.containers {
            if case .array(let values) = entry.container { values.forEach(u16) }
        }
        return out
    }

    static func == (lhs: RoaringBitmap, rhs: RoaringBitmap) -> Bool {
        lhs.containers.count == rhs.containers.count
            && zip(lhs.containers, rhs.containers).allSatisfy { $0.key == $1.key && $0.container == $1.container }
    }
}
