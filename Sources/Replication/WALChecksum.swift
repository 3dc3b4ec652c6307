/// SQLite's WAL checksum: Fletcher-like sums over 32-bit words, in the byte order the WAL magic names.
public struct WALChecksum: Equatable, Sendable {
    public var s1: UInt32
    public var s2: UInt32

    public static let zero = WALChecksum(s1: 0, s2: 0)

    /// Continues the checksum over `bytes` (a multiple of 8 bytes long).
    public mutating func update(_ bytes: UnsafeRawBufferPointer, bigEndian: Bool) {
        precondition(bytes.count % 8 == 0)
        var s1 = self.s1
        var s2 = self.s2
        var i = 0
        if bigEndian {
            while i < bytes.count {
                let x0 = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let x1 = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                s1 = s1 &+ x0 &+ s2
                s2 = s2 &+ x1 &+ s1
                i += 8
            }
        } else {
            while i < bytes.count {
                let x0 = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let x1 = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                s1 = s1 &+ x0 &+ s2
                s2 = s2 &+ x1 &+ s1
                i += 8
            }
        }
        self.s1 = s1
        self.s2 = s2
    }

    public var packed: UInt64 { UInt64(self.s1) << 32 | UInt64(self.s2) }

    public init(s1: UInt32, s2: UInt32) {
        self.s1 = s1
        self.s2 = s2
    }

    public init(packed: UInt64) {
        self.s1 = UInt32(truncatingIfNeeded: packed >> 32)
        self.s2 = UInt32(truncatingIfNeeded: packed)
    }
}

extension UnsafeRawBufferPointer {
    public func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: self.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
