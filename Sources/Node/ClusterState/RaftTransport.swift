import AsyncHTTPClient
import Consensus
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Raft messages between members over the pooled mutual-TLS peer connections: to each peer one
/// long-lived `POST /_peer/v1/raft` whose body is a stream of frames (a 4-byte big-endian length,
/// then a `RaftCodec` message), so messages are pipelined on one connection instead of costing a
/// request each. Raft tolerates loss, so a peer that cannot be reached (or whose stream is full)
/// loses messages rather than blocking the log: its stream is opened again, after a short backoff,
/// by the next message for it.
final class RaftTransport: Sendable {
    static let maximumFrameSize = 64 << 20
    static let path = "/_peer/v1/raft"
    /// Frames queued for one peer before the newest are dropped.
    static let queueLimit = 4096

    private struct Outbound {
        let continuation: AsyncStream<ByteBuffer>.Continuation
    }

    private struct State {
        var addresses: [UInt64: String] = [:]
        var streams: [String: Outbound] = [:]
        var retryAfter: [String: ContinuousClock.Instant] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    let peers: PeerClient
    let clusterID: String
    private let logger: Logger

    /// Every stream carries `clusterID`; a receiver of another cluster refuses it (412), so two
    /// groups that bootstrapped apart never exchange entries (their logs could match by accident).
    init(peers: PeerClient, clusterID: String, logger: Logger) {
        self.peers = peers
        self.clusterID = clusterID
        self.logger = logger
    }

    static let clusterHeader = "x-turso-cluster-id"

    /// Where a replica's peer listener is (nil forgets it).
    func setAddress(_ address: String?, for replica: ReplicaID) {
        self.state.withLock { $0.addresses[replica.rawValue] = address }
    }

    /// Where a replica's peer listener is, when known.
    func address(of replica: ReplicaID) -> String? {
        self.state.withLock { $0.addresses[replica.rawValue] }
    }

    /// Queues `messages`, each on its destination's stream (opened on demand).
    func send(_ messages: [RaftMessage]) {
        for message in messages {
            let bytes = RaftCodec.encode(message)
            var frame = ByteBuffer()
            frame.writeInteger(UInt32(bytes.count))
            frame.writeBytes(bytes)
            let (outbound, open) = self.state.withLock { state -> (Outbound?, String?) in
                guard !state.closed, let address = state.addresses[message.to.rawValue] else { return (nil, nil) }
                if let existing = state.streams[address] { return (existing, nil) }
                if let retry = state.retryAfter[address], ContinuousClock.now < retry { return (nil, nil) }
                let (stream, continuation) = AsyncStream.makeStream(
                    of: ByteBuffer.self,
                    bufferingPolicy: .bufferingOldest(Self.queueLimit)
                )
                let outbound = Outbound(continuation: continuation)
                state.streams[address] = outbound
                self.open(stream, to: address, continuation: continuation)
                return (outbound, address)
            }
            if let open { self.logger.debug("raft stream opened", metadata: ["raft.peer": "\(open)"]) }
            outbound?.continuation.yield(frame)
        }
    }

    private func open(
        _ stream: AsyncStream<ByteBuffer>,
        to address: String,
        continuation: AsyncStream<ByteBuffer>.Continuation
    ) {
        let client = self.peers.client
        var streaming = self.request(to: address, Self.path)
        streaming.body = .stream(stream, length: .unknown)
        let request = streaming
        Task {
            var failure: String?
            do {
                let response = try await client.execute(request, timeout: .hours(24 * 365))
                _ = try? await response.body.collect(upTo: 1 << 16)
                if response.status != .ok { failure = "answered \(response.status.code)" }
            } catch {
                failure = "\(error)"
            }
            continuation.finish()
            // A closed stream is reopened by the next message, after a pause either way: a receiver
            // that is stopping answers at once, and must not be asked again at every heartbeat.
            self.state.withLock { state in
                state.streams[address] = nil
                state.retryAfter[address] = ContinuousClock.now + .milliseconds(200)
            }
            self.logger.debug(
                "raft stream closed",
                metadata: ["raft.peer": "\(address)", "error": "\(failure ?? "none")"]
            )
        }
    }

    /// Ends every stream (shutdown).
    func close() {
        let streams = self.state.withLock { state in
            state.closed = true
            defer { state.streams = [:] }
            return Array(state.streams.values)
        }
        for stream in streams { stream.continuation.finish() }
    }

    /// A binary request of this cluster (its id in the cluster header) to `path` on `address`.
    func request(to address: String, _ path: String) -> HTTPClientRequest {
        var request = self.peers.request(.POST, address, path)
        request.headers.add(name: "content-type", value: "application/octet-stream")
        request.headers.add(name: Self.clusterHeader, value: self.clusterID)
        return request
    }

    /// Refuses (403) a message whose sender replica belongs, as gossip shows it, to a node other
    /// than the one the connection's certificate names. Replicas gossip has not named yet pass (the
    /// membership layer has already checked that the certificate is the cluster's).
    static func checkSender(_ message: RaftMessage, log: DirectoryLog, sender: Set<String>?) throws(NodeError) {
        guard let sender, let node = log.nodeName(of: message.from), !sender.contains(node) else { return }
        throw NodeError(
            .peerProtocol,
            "a raft message from replica \(message.from) (node \(node)) arrived over a connection of \(sender.sorted())",
            status: 403
        )
    }

    /// Refuses (412) a request from another cluster, before anything of it is read.
    static func checkCluster(_ request: Request, log: DirectoryLog) throws(NodeError) {
        let sender = request.headers[HTTPField.Name(Self.clusterHeader)!]
        guard sender == log.clusterID else {
            throw NodeError(
                .peerProtocol,
                "the request belongs to cluster \(sender ?? "(none)"), this node to \(log.clusterID)",
                status: 412
            )
        }
    }

    /// The receiving end of `/_peer/v1/raft`: refuses another cluster's stream, then hands every
    /// message to `log` until it stops. `sender`: the identities of the connection's certificate;
    /// a message from a replica that gossip names after another node ends the stream (a member
    /// speaks only for itself).
    static func serve(_ request: Request, log: DirectoryLog, sender: Set<String>?) async throws(NodeError) -> Response {
        try Self.checkCluster(request, log: log)
        // A stream may stay idle for long: on a graceful shutdown of the listener it ends at once
        // (the sender reconnects to whoever listens next) instead of holding the drain up.
        do {
            try await cancelWhenGracefulShutdown {
                try await Self.receive(request.body) { message throws(NodeError) in
                    try Self.checkSender(message, log: log, sender: sender)
                    return log.receive(message)
                }
            }
        } catch let error as NodeError {
            throw error
        } catch {
            // Cancelled by the shutdown.
        }
        return Response(status: .ok)
    }

    /// Reads a stream of frames (a request body) and hands each decoded message to `deliver`, until
    /// `deliver` answers false (the receiver is stopping: the request ends, so a graceful shutdown
    /// does not wait for a stream that never ends). A frame that is too large or does not decode
    /// ends the stream with an error: the sender reconnects.
    static func receive(
        _ body: some AsyncSequence<ByteBuffer, any Error>,
        deliver: (RaftMessage) throws(NodeError) -> Bool
    ) async throws(NodeError) {
        var pending = ByteBuffer()
        do {
            for try await chunk in body {
                var chunk = chunk
                pending.writeBuffer(&chunk)
                while let length = pending.getInteger(at: pending.readerIndex, as: UInt32.self) {
                    guard Int(length) <= Self.maximumFrameSize else {
                        throw NodeError.badRequest("a raft frame of \(length) bytes exceeds \(Self.maximumFrameSize)")
                    }
                    guard pending.readableBytes >= 4 + Int(length) else { break }
                    pending.moveReaderIndex(forwardBy: 4)
                    let bytes = pending.readBytes(length: Int(length)) ?? []
                    let message: RaftMessage
                    do {
                        message = try RaftCodec.decodeMessage(bytes)
                    } catch {
                        throw NodeError.badRequest("an undecodable raft frame: \(error)")
                    }
                    guard try deliver(message) else { return }
                }
                pending.discardReadBytes()
            }
        } catch let error as NodeError {
            throw error
        } catch  where Task.isCancelled {
            return  // the listener is shutting down
        } catch {
            throw NodeError(.peerFailed, "the raft stream broke: \(error)", status: 400)
        }
    }
}
