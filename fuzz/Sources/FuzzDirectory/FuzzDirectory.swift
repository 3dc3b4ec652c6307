import Directory

/// libFuzzer entry for a directory log entry and a directory snapshot (sent by the leader to a
/// lagging member): anything either decodes or is refused; what decodes re-encodes to bytes that
/// decode to the same value, and applying a batch never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDirectory(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let snapshot = try? DirectoryCodec.decodeState(bytes) {
        precondition((try? DirectoryCodec.decodeState(DirectoryCodec.encode(snapshot))) == snapshot, "state round trip")
    }
    guard let batch = try? DirectoryCodec.decode(bytes) else {
        return 0
    }
    precondition((try? DirectoryCodec.decode(DirectoryCodec.encode(batch))) == batch, "round trip")
    var state = DirectoryState()
    _ = state.apply(
        DirectoryBatch(commands: [
            .joinMember(id: "n1", storageID: "s1", zone: ""), .activateMember(id: "n1", storageID: "s1"),
        ]),
        at: 1
    )
    _ = state.apply(batch, at: 2)
    return 0
}
