import Logging
import Membership
import NIOCore
import NIOSSL

/// Splits the byte stream into length-prefixed frames; an oversized frame closes the connection.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= EnvelopeCodec.maximumFrameSize else {
            throw MembershipTransportError.frameTooLarge(Int(length), limit: EnvelopeCodec.maximumFrameSize)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// Decodes envelopes from verified peers and hands them to the service. A frame whose sender is not
/// the identity in the peer's certificate, or that does not parse, closes the connection.
final class InboundEnvelopeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let deliver: @Sendable (MembershipEnvelope) -> Void
    private let logger: Logger
    private let requireIdentity: Bool
    private var identities: Set<String>?

    init(requireIdentity: Bool, logger: Logger, deliver: @escaping @Sendable (MembershipEnvelope) -> Void) {
        self.requireIdentity = requireIdentity
        self.logger = logger
        self.deliver = deliver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let envelope: MembershipEnvelope
        do {
            envelope = try EnvelopeCodec.decode(frame)
        } catch {
            self.reject(context, "undecodable frame: \(error)")
            return
        }
        if self.requireIdentity {
            if self.identities == nil {
                let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
                self.identities = certificate.map(TLSMaterial.identities(of:)) ?? []
            }
            guard self.identities!.contains(envelope.sender.id.rawValue) else {
                self.reject(
                    context,
                    "sender \(envelope.sender.id) is not the certificate's identity \(self.identities!.sorted())"
                )
                return
            }
        }
        self.deliver(envelope)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("gossip connection closed", metadata: ["membership.error": "\(error)"])
        context.close(promise: nil)
    }

    private func reject(_ context: ChannelHandlerContext, _ reason: String) {
        self.logger.warning("dropping a gossip connection", metadata: ["membership.reason": "\(reason)"])
        context.close(promise: nil)
    }
}

/// Outbound connections only write; reading is only for noticing that the peer closed (which is also
/// how a TLS 1.3 peer that rejected our certificate shows itself).
final class OutboundConnectionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
