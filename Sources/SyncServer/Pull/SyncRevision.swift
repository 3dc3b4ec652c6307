/// A sync revision: `<lineage>:<epoch>:<sequence>[:<checksum>]` (lineage and checksum in 16 hex
/// digits, epoch and sequence in decimal).
///
/// The sequence numbers commits across checkpoints (see `ChangeHistory`), so a revision survives the
/// WAL resets that bound storage. The lineage names one history: a client from another lineage gets a
/// full snapshot. The checksum is SQLite's cumulative WAL checksum at that commit; while the commit is
/// still in the current WAL generation it fingerprints every frame up to it, so a copy that diverged
/// inside the generation is caught too. The epoch counts ownership changes (0 until replication).
///
/// Clients treat the string as opaque; revisions of the earlier `<salts>-<checksum>:<frame>` form
/// (`Revision`) are still understood while their WAL generation is current.
struct SyncRevision: Equatable, Sendable, CustomStringConvertible {
    var lineage: UInt64
    var epoch: UInt64
    var sequence: UInt64
    var checksum: UInt64?

    var description: String {
        var text = "\(hex16(self.lineage)):\(self.epoch):\(self.sequence)"
        if let checksum = self.checksum { text += ":" + hex16(checksum) }
        return text
    }

    init(lineage: UInt64, epoch: UInt64, sequence: UInt64, checksum: UInt64?) {
        self.lineage = lineage
        self.epoch = epoch
        self.sequence = sequence
        self.checksum = checksum
    }

    /// Parses a revision string; nil for anything else.
    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3 || parts.count == 4, parts[0].utf8.count == 16,
            let lineage = UInt64(parts[0], radix: 16), isDecimal(parts[1]), isDecimal(parts[2]),
            let epoch = UInt64(parts[1]), let sequence = UInt64(parts[2])
        else { return nil }
        var checksum: UInt64?
        if parts.count == 4 {
            guard parts[3].utf8.count == 16, let value = UInt64(parts[3], radix: 16), isLowerHex(parts[3]) else {
                return nil
            }
            checksum = value
        }
        guard isLowerHex(parts[0]) else { return nil }
        self.init(lineage: lineage, epoch: epoch, sequence: sequence, checksum: checksum)
    }
}

private func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

private func isDecimal(_ text: Substring) -> Bool {
    !text.isEmpty && text.utf8.count <= 20 && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
}

private func isLowerHex(_ text: Substring) -> Bool {
    text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
}
