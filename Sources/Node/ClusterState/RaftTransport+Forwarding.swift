import AsyncHTTPClient
import Consensus
import Directory
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

/// Proposals from members that do not lead: `POST /_peer/v1/raft/propose` carries an encoded
/// `DirectoryBatch` to the leader, which proposes it and answers, once it applied the entry, with
/// the entry's index (8 bytes, big-endian) and the encoded outcomes. One hop: a receiver that does
/// not lead (any more) answers 421 and the proposer's caller retries.
extension RaftTransport {
    static let proposePath = "/_peer/v1/raft/propose"
    /// Largest forwarded batch (the proposer's own entries are bounded far below this).
    static let maximumProposalSize = 16 << 20

    /// Sends `batch` to `leader` and returns where it was applied and with which outcomes.
    func forward(
        _ batch: [UInt8],
        to leader: ReplicaID
    ) async throws(NodeError) -> (
        index: UInt64, outcomes: [DirectoryOutcome]
    ) {
        guard let address = self.address(of: leader) else {
            throw NodeError(
                .ownerUnavailable,
                "the cluster log's leader is not reachable yet; retry shortly",
                status: 503,
                retryAfter: 1
            )
        }
        var request = self.request(to: address, Self.proposePath)
        request.body = .bytes(ByteBuffer(bytes: batch))
        let status: HTTPResponseStatus
        let body: ByteBuffer
        do {
            let response = try await self.peers.client.execute(request, timeout: .seconds(35))
            status = response.status
            body = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw NodeError(
                .ownerUnavailable,
                "the cluster log's leader did not answer (\(error)): the change may or may not have been made; check before retrying",
                status: 503,
                retryAfter: 1
            )
        }
        guard status == .ok, body.readableBytes >= 8,
            let index = body.getInteger(at: body.readerIndex, as: UInt64.self),
            let outcomes = try? DirectoryCodec.decodeOutcomes(Array(body.readableBytesView.dropFirst(8)))
        else {
            // The leader's own answer ("lost", "outcome unknown", ...) when it gave one.
            let reason = (try? JSONDecoder().decode(LeaderError.self, from: Data(body.readableBytesView)))?.error
                .message
            throw NodeError(
                .ownerUnavailable,
                reason ?? "the cluster log's leader could not take the change (\(status.code)); retry shortly",
                status: 503,
                retryAfter: 1
            )
        }
        return (index, outcomes)
    }

    private struct LeaderError: Decodable {
        struct Body: Decodable { var message: String }
        var error: Body
    }

    /// The receiving end of `/_peer/v1/raft/propose`.
    static func serveProposal(_ request: Request, log: DirectoryLog) async throws(NodeError) -> Response {
        try Self.checkCluster(request, log: log)
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maximumProposalSize)
        } catch {
            throw NodeError(
                .payloadTooLarge,
                "a forwarded proposal exceeds \(Self.maximumProposalSize) bytes",
                status: 413
            )
        }
        let bytes = Array(body.readableBytesView)
        guard (try? DirectoryCodec.decode(bytes)) != nil else {
            throw NodeError.badRequest("a forwarded proposal is not a directory batch")
        }
        switch await log.proposeLocally(bytes) {
        case .success(let index, let outcomes):
            var out = ByteBuffer()
            out.writeInteger(index)
            out.writeBytes(DirectoryCodec.encode(outcomes))
            return Response(status: .ok, body: ResponseBody(byteBuffer: out))
        case .notLeader(_, let error):
            throw NodeError(.misdirected, "this member does not lead the cluster log: \(error.message)", status: 421)
        case .failure(let error):
            throw error
        }
    }
}
