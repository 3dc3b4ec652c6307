/// How far a copy of a WAL holds committed transactions: the generation, the byte offset just past
/// the last commit frame (the header included; 0 for a generation with nothing written yet) and the
/// cumulative checksum there. A follower appends only at exactly the position it holds, and the
/// checksum chain makes any divergent prefix fail the next frame.
public struct WALPosition: Equatable, Sendable, CustomStringConvertible {
    /// Nil while the WAL holds no header.
    public var generation: WALGeneration?
    public var offset: Int
    public var checksum: WALChecksum

    public static let empty = WALPosition(generation: nil, offset: 0, checksum: .zero)

    public init(generation: WALGeneration?, offset: Int, checksum: WALChecksum) {
        self.generation = generation
        self.offset = offset
        self.checksum = checksum
    }

    public var description: String {
        "\(self.generation.map(\.description) ?? "-")@\(self.offset)#\(String(self.checksum.packed, radix: 16))"
    }

    /// The form `description` writes, read back.
    public init?(_ text: some StringProtocol) {
        guard let at = text.firstIndex(of: "@"), let hash = text.firstIndex(of: "#"), at < hash else { return nil }
        let generationText = text[..<at]
        guard let offset = Int(text[text.index(after: at)..<hash]), offset >= 0,
            let checksum = UInt64(text[text.index(after: hash)...], radix: 16)
        else { return nil }
        if generationText == "-" {
            self.init(generation: nil, offset: offset, checksum: WALChecksum(packed: checksum))
        } else {
            guard let generation = WALGeneration(generationText) else { return nil }
            self.init(generation: generation, offset: offset, checksum: WALChecksum(packed: checksum))
        }
    }
}
