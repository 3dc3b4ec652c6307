import Membership
import NIOCore

/// libFuzzer entry for the membership frame codec (what a peer's TLS connection delivers after the
/// length prefix): anything either decodes or is refused, and a decoded envelope encodes to a frame
/// that decodes to the same envelope.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let payload = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    guard let envelope = try? EnvelopeCodec.decode(payload) else { return 0 }
    var frame = ByteBuffer()
    EnvelopeCodec.encode(envelope, into: &frame)
    let length = frame.readInteger(as: UInt32.self)
    precondition(length.map(Int.init) == frame.readableBytes, "length prefix")
    precondition((try? EnvelopeCodec.decode(frame)) == envelope, "round trip")
    return 0
}
