import MembershipTransport
import NIOCore
import NIOSSL
import Synchronization

/// The identities (common name and DNS names) of the certificate each mutual-TLS connection of the
/// peer listener presented, so a request can be checked against who sent it (a member may only
/// speak for itself). Recorded with the connection's first bytes (after the handshake, before any
/// request is decoded) and forgotten when the connection closes.
final class PeerIdentities: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private static let byChannel = Mutex<[ObjectIdentifier: Set<String>]>([:])

    /// The identities of the connection `channel`, or nil when it is not a mutual-TLS connection.
    static func of(_ channel: any Channel) -> Set<String>? {
        self.byChannel.withLock { $0[ObjectIdentifier(channel)] }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let key = ObjectIdentifier(context.channel)
        if Self.byChannel.withLock({ $0[key] }) == nil {
            let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
            let identities = certificate.map(TLSMaterial.identities(of:)) ?? []
            Self.byChannel.withLock { $0[key] = identities }
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let key = ObjectIdentifier(context.channel)
        Self.byChannel.withLock { $0[key] = nil }
        context.fireChannelInactive()
    }
}
