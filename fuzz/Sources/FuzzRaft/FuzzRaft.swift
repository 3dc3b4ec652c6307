import Consensus

/// libFuzzer entry for a Raft message frame from another member: anything either decodes or is
/// refused; a decoded message re-encodes to bytes that decode to the same message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRaft(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let message = try? RaftCodec.decodeMessage(bytes) {
        precondition((try? RaftCodec.decodeMessage(RaftCodec.encode(message))) == message, "round trip")
    }
    if let payload = try? RaftCodec.decodePayload(bytes) {
        precondition((try? RaftCodec.decodePayload(RaftCodec.encode(payload))) == payload, "payload round trip")
    }
    return 0
}
