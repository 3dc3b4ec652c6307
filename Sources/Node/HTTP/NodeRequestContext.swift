import Hummingbird

/// The request context of the node's listeners: Hummingbird's core context plus whether another
/// member's listener passed the request on (the peer listener marks it; such a request is never
/// forwarded again).
struct NodeRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Set on the peer listener: an entry node forwarded this request.
    var forwarded = false
    /// On a mutual-TLS listener: the identities the client's certificate vouches for.
    let peerIdentities: Set<String>?

    init(source: Source) {
        self.coreContext = .init(source: source)
        self.peerIdentities = PeerIdentities.of(source.channel)
    }
}
