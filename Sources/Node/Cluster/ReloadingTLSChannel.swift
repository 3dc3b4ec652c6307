import HummingbirdCore
import Logging
import MembershipTransport
import NIOCore
import NIOSSL

/// Wraps an HTTP child channel in TLS with the cluster's current server context, so that a
/// certificate reload applies to the next connection (mutual TLS: the client must present a
/// certificate from the cluster CA).
struct ReloadingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let material: TLSMaterial

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: self.material.contexts.server))
            try channel.pipeline.syncOperations.addHandler(PeerIdentities())
        }.flatMap {
            self.base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        await self.base.handle(value: value, logger: logger)
    }
}

extension ReloadingTLSChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { self.base.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over mutual TLS with reloadable certificates.
    static func mutualTLS(_ configuration: HTTP1Channel.Configuration, material: TLSMaterial) -> HTTPServerBuilder {
        .init { responder in
            ReloadingTLSChannel(
                base: HTTP1Channel(responder: responder, configuration: configuration),
                material: material
            )
        }
    }
}
