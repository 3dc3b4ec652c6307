/// The 32-byte header SQLite writes at the start of every WAL generation: the checksum byte order,
/// the page size, the checkpoint sequence and the salts every frame of the generation repeats.
public struct WALHeader: Equatable, Sendable {
    public static let size = 32
    public static let frameHeaderSize = 24

    public var bigEndianChecksum: Bool
    public var pageSize: Int
    public var checkpointSequence: UInt32
    public var salt1: UInt32
    public var salt2: UInt32
    /// Checksum of the header's first 24 bytes: the seed of frame 1's checksum.
    public var checksum: WALChecksum

    public var frameSize: Int { Self.frameHeaderSize + self.pageSize }

    /// The header `bytes` start with, or nil when they hold none (short, a bad magic, page size or
    /// checksum: what SQLite's recovery treats as an empty WAL).
    public static func parse(_ bytes: some Collection<UInt8>) -> WALHeader? {
        guard bytes.count >= Self.size else { return nil }
        return Array(bytes.prefix(Self.size)).withUnsafeBytes { raw -> WALHeader? in
            let magic = raw.bigEndianUInt32(at: 0)
            guard magic == 0x377f_0682 || magic == 0x377f_0683 else { return nil }
            let pageSize = Int(raw.bigEndianUInt32(at: 8))
            guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else { return nil }
            let bigEndian = magic & 1 == 1
            var checksum = WALChecksum.zero
            checksum.update(UnsafeRawBufferPointer(rebasing: raw[0..<24]), bigEndian: bigEndian)
            guard checksum.s1 == raw.bigEndianUInt32(at: 24), checksum.s2 == raw.bigEndianUInt32(at: 28) else {
                return nil
            }
            return WALHeader(
                bigEndianChecksum: bigEndian,
                pageSize: pageSize,
                checkpointSequence: raw.bigEndianUInt32(at: 12),
                salt1: raw.bigEndianUInt32(at: 16),
                salt2: raw.bigEndianUInt32(at: 20),
                checksum: checksum
            )
        }
    }

    /// The generation this header starts.
    public var generation: WALGeneration { WALGeneration(salt1: self.salt1, salt2: self.salt2) }
}

/// One WAL generation (the frames between two resets), named by its header's salts: SQLite changes
/// them at every reset, and a frame counts only with the salts of the header before it.
public struct WALGeneration: Hashable, Sendable, Codable, CustomStringConvertible {
    public var salt1: UInt32
    public var salt2: UInt32

    public init(salt1: UInt32, salt2: UInt32) {
        self.salt1 = salt1
        self.salt2 = salt2
    }

    public var description: String {
        String(self.salt1, radix: 16) + "." + String(self.salt2, radix: 16)
    }

    /// The form `description` writes, read back.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".")
        guard parts.count == 2, let salt1 = UInt32(parts[0], radix: 16), let salt2 = UInt32(parts[1], radix: 16)
        else { return nil }
        self.init(salt1: salt1, salt2: salt2)
    }
}
