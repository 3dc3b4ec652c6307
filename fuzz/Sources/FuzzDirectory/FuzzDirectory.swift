import Directory

/// libFuzzer entry for a directory log entry: anything either decodes or is refused; a decoded
/// batch re-encodes to bytes that decode to the same batch, and applying it never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDirectory(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let batch = try? DirectoryCodec.decode(Array(UnsafeBufferPointer(start: data, count: size))) else {
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
