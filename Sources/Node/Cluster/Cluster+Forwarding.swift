import Hummingbird
import Membership
import NIOCore
import Proxy

extension Cluster {
    /// Sends a request, unchanged and streamed, to `member`'s peer listener at `path`, marked as
    /// forwarded, and streams the answer back. When that member answers 421 naming another owner
    /// (its view is newer than this node's), the request goes once more, to that owner, provided its
    /// body was read beforehand (`body`; small bodies are, so they can be sent twice).
    func forward(
        _ request: Request,
        path: String,
        to member: MemberState,
        body: ByteBuffer?,
        maxBodyBytes: Int,
        timeout: Duration
    ) async throws(NodeError) -> Response {
        guard let peers else { throw NodeError.ownerUnavailable("this node is not clustered", owner: nil) }
        var target = member
        var retried = false
        while true {
            let headers = [
                (ClusterHeaders.forwarded.rawName, self.selfID),
                (PeerProtocol.header.rawName, String(PeerProtocol.version)),
            ]
            let response: Response
            do {
                response = try await peers.proxy.forward(
                    request,
                    upstream: peers.baseURL(target.metadata.peerAddress),
                    path: path,
                    maxBodyBytes: maxBodyBytes,
                    timeout: timeout,
                    extraHeaders: headers,
                    removingHeaders: ClusterHeaders.internalNames,
                    body: body
                )
            } catch {
                self.metrics.countForwarded("failed")
                if error.code == .bodyTooLarge { throw NodeError(.payloadTooLarge, error.message, status: 413) }
                throw NodeError.ownerUnavailable(
                    "member \(target.id.rawValue), which owns this namespace, did not answer: \(error.message)",
                    owner: target.id.rawValue
                )
            }
            guard response.status.code == 421 else {
                self.metrics.countForwarded("ok")
                return response
            }
            if response.headers[ClusterHeaders.owner] == self.selfID {
                // The target's directory is newer than this node's and names this node: the caller
                // resolves again once this node has applied it.
                self.metrics.countForwarded("misdirected")
                throw NodeError(
                    .misdirected,
                    "this node's directory lags; it owns the namespace",
                    status: 421,
                    owner: self.selfID
                )
            }
            let hint = response.headers[ClusterHeaders.owner].flatMap { self.view.member($0) }
            guard !retried, body != nil, let hint, hint.id != target.id, hint.id.rawValue != self.selfID else {
                self.metrics.countForwarded("misdirected")
                throw NodeError.ownerUnavailable(
                    "the members disagree about who owns this namespace (a membership change is spreading); retry shortly",
                    owner: hint?.id.rawValue
                )
            }
            self.metrics.countForwarded("retried")
            retried = true
            target = hint
        }
    }
}
