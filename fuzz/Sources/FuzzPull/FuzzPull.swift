/// libFuzzer entry for what `/pull-updates` reads from a client: the protobuf request, the revisions
/// it names and the portable RoaringBitmap page selector. Anything either decodes or is refused; a
/// decoded request survives re-encoding, and membership tests on a decoded selector never trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPull(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let request = try? PullUpdatesRequest(decoding: bytes) {
        precondition((try? PullUpdatesRequest(decoding: request.encoded())) == request, "re-encoding changed it")
        for text in [request.serverRevision, request.clientRevision] {
            if let revision = Revision(text) {
                precondition(Revision(revision.description) == revision, "revision round trip: \(text)")
            }
        }
        if let selector = try? RoaringBitmap(portable: request.serverPagesSelector) {
            for page: UInt32 in [0, 1, 4095, 65_535, 65_536, 1 << 20, .max] { _ = selector.contains(page) }
        }
    }
    // The selector format on its own, so the fuzzer reaches its corners without the protobuf frame.
    if let selector = try? RoaringBitmap(portable: bytes) {
        for page: UInt32 in [0, 1, 255, 65_535, 65_536, 1 << 24, .max] { _ = selector.contains(page) }
    }
    if let text = String(validating: bytes, as: UTF8.self), let revision = Revision(text) {
        precondition(Revision(revision.description) == revision, "revision round trip: \(text)")
    }
    return 0
}
