import Replication

/// libFuzzer entry for what a follower reads from a peer: WAL bytes shipped to its copy. Anything
/// is refused or checked into a position inside the input; reading the same bytes as a WAL file
/// never gets past what the check accepted.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzShipment(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var file = WALTail()
    file.advance(size: bytes.count) { offset, count in Array(bytes[offset..<min(offset + count, bytes.count)]) }
    precondition(file.position.offset <= bytes.count, "a position past the file")
    if let checked = try? WALTail().appending(bytes) {
        precondition(checked.position.offset == bytes.count, "an accepted shipment ends where it says")
        precondition(file.position == checked.position, "the file and the shipment disagree")
    }
    _ = file.newestPages { offset, count in Array(bytes[offset..<min(offset + count, bytes.count)]) }
    return 0
}
