/// The simulation's application: a tiny directory of names (`a`, `b`), each owned by a node
/// at an epoch. `create` fails if the name exists; `move` succeeds only at the expected epoch.
struct Directory: Equatable, Sendable {
    struct Slot: Equatable, Hashable, Sendable, CustomStringConvertible {
        var owner: UInt8
        var epoch: UInt32

        var description: String { "n\(self.owner)@\(self.epoch)" }
    }

    enum Operation: Equatable, Sendable {
        case create(owner: UInt8)
        case move(owner: UInt8, expectedEpoch: UInt32)
        case get
    }

    enum Result: Equatable, Sendable {
        case ok
        case failed
        case value(Slot?)
    }

    static let keys = 2
    var slots: [Slot?] = Array(repeating: nil, count: Directory.keys)

    /// The sequential specification, shared by the replicas and the linearizability checker.
    static func apply(_ operation: Operation, to slot: Slot?) -> (Slot?, Result) {
        switch operation {
        case .create(let owner):
            guard slot == nil else { return (slot, .failed) }
            return (Slot(owner: owner, epoch: 1), .ok)
        case .move(let owner, let expectedEpoch):
            guard let slot, slot.epoch == expectedEpoch else { return (slot, .failed) }
            return (Slot(owner: owner, epoch: slot.epoch + 1), .ok)
        case .get:
            return (slot, .value(slot))
        }
    }

    mutating func apply(_ operation: Operation, key: Int) -> Result {
        let (slot, result) = Self.apply(operation, to: self.slots[key])
        self.slots[key] = slot
        return result
    }

    // MARK: - Encodings (entry payloads and snapshot data)

    static func encode(id: Int, key: Int, _ operation: Operation) -> [UInt8] {
        var bytes = withUnsafeBytes(of: UInt32(id).littleEndian, Array.init) + [UInt8(key)]
        switch operation {
        case .create(let owner): bytes += [0, owner, 0, 0, 0, 0]
        case .move(let owner, let epoch): bytes += [1, owner] + withUnsafeBytes(of: epoch.littleEndian, Array.init)
        case .get: bytes += [2, 0, 0, 0, 0, 0]
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> (id: Int, key: Int, operation: Operation) {
        let id = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        let epoch = UInt32(bytes[7]) | UInt32(bytes[8]) << 8 | UInt32(bytes[9]) << 16 | UInt32(bytes[10]) << 24
        let operation: Operation =
            switch bytes[5] {
            case 0: .create(owner: bytes[6])
            case 1: .move(owner: bytes[6], expectedEpoch: epoch)
            default: .get
            }
        return (id, Int(bytes[4]), operation)
    }

    var encoded: [UInt8] {
        self.slots.flatMap { slot -> [UInt8] in
            guard let slot else { return [0, 0, 0, 0, 0, 0] }
            return [1, slot.owner] + withUnsafeBytes(of: slot.epoch.littleEndian, Array.init)
        }
    }

    init() {}

    init(decoding bytes: [UInt8]) {
        guard bytes.count == 6 * Self.keys else { return }
        for key in 0..<Self.keys where bytes[6 * key] == 1 {
            let base = 6 * key
            let epoch =
                UInt32(bytes[base + 2]) | UInt32(bytes[base + 3]) << 8 | UInt32(bytes[base + 4]) << 16
                | UInt32(bytes[base + 5]) << 24
            self.slots[key] = Slot(owner: bytes[base + 1], epoch: epoch)
        }
    }
}
