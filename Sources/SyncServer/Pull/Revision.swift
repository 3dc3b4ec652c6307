import Replication

/// A sync revision with WAL lineage: `<salt1><salt2>-<cksum1><cksum2>:<frame>` in hex and decimal.
///
/// Upstream revisions are bare frame numbers, so a client that synced with another history (a stale
/// replica, a replaced database) silently diverges. The salts name one WAL history and the cumulative
/// checksum at `frame` fingerprints every frame up to it: a server accepts a client revision only if it
/// has exactly that frame with exactly that checksum, and answers anything else with a full snapshot.
struct Revision: Equatable, Sendable, CustomStringConvertible {
    var salt1: UInt32
    var salt2: UInt32
    var checksum: WALChecksum
    var frame: Int

    /// The revision of a database without a WAL: its content lives only in the main file.
    static let noWAL = Revision(salt1: 0, salt2: 0, checksum: .zero, frame: 0)

    var description: String {
        "\(hex(self.salt1))\(hex(self.salt2))-\(hex(self.checksum.s1))\(hex(self.checksum.s2)):\(self.frame)"
    }

    init(salt1: UInt32, salt2: UInt32, checksum: WALChecksum, frame: Int) {
        self.salt1 = salt1
        self.salt2 = salt2
        self.checksum = checksum
        self.frame = frame
    }

    /// Parses a revision string; nil for anything else (an upstream numeric revision, garbage).
    init?(_ text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 35, utf8[16] == UInt8(ascii: "-"), utf8[33] == UInt8(ascii: ":") else { return nil }
        guard let a = parseHex(utf8[0..<8]), let b = parseHex(utf8[8..<16]), let c = parseHex(utf8[17..<25]),
            let d = parseHex(utf8[25..<33])
        else { return nil }
        let digits = utf8[34...]
        guard !digits.isEmpty, digits.count <= 12, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let frame = Int(String(decoding: digits, as: UTF8.self))
        else { return nil }
        self.init(salt1: a, salt2: b, checksum: WALChecksum(s1: c, s2: d), frame: frame)
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}

private func parseHex(_ bytes: ArraySlice<UInt8>) -> UInt32? {
    var value: UInt32 = 0
    for byte in bytes {
        let digit: UInt32
        switch byte {
        case 48...57: digit = UInt32(byte - 48)
        case 97...102: digit = UInt32(byte - 87)
        default: return nil
        }
        value = value << 4 | digit
    }
    return value
}
