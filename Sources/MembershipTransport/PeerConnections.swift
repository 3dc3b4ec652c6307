import Foundation
import Logging
import Membership
import NIOCore
import NIOPosix
import NIOSSL
import ServerSupport
import Synchronization

/// Outbound connections to peers, one for control traffic (probes, acks, gossip) and one for bulk
/// traffic (full syncs) per address, so probes never queue behind a large sync. Failed addresses back
/// off (100 ms doubling to 5 s) and their messages are dropped meanwhile: SWIM tolerates loss, and a
/// blocked send must never delay the detector.
final class PeerConnections: Sendable {
    struct Key: Hashable {
        var address: String
        var bulk: Bool
    }

    private enum Slot {
        case connecting([ByteBuffer])
        case connected(any Channel)
        case backingOff(until: ContinuousClock.Instant, delay: Duration)
    }

    private let slots = Mutex<[Key: Slot]>([:])
    private let tls: TLSMaterial?
    private let logger: Logger
    static let maxPending = 64

    init(tls: TLSMaterial?, logger: Logger) {
        self.tls = tls
        self.logger = logger
    }

    func send(_ envelope: MembershipEnvelope, to address: String) {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        EnvelopeCodec.encode(envelope, into: &buffer)
        let bulk: Bool
        switch envelope.message {
        case .syncRequest, .syncResponse, .syncDelta: bulk = true
        default: bulk = false
        }
        let key = Key(address: address, bulk: bulk)
        enum Step {
            case write(any Channel)
            case connect
            case drop
        }
        let step = self.slots.withLock { slots -> Step in
            switch slots[key] {
            case .connected(let channel) where channel.isActive:
                return .write(channel)
            case .connecting(var pending):
                if pending.count < Self.maxPending { pending.append(buffer) }
                slots[key] = .connecting(pending)
                return .drop
            case .backingOff(let until, _) where ContinuousClock.now < until:
                return .drop
            default:
                slots[key] = .connecting([buffer])
                return .connect
            }
        }
        switch step {
        case .write(let channel):
            channel.writeAndFlush(buffer, promise: nil)
        case .connect:
            self.connect(key)
        case .drop:
            break
        }
    }

    private func connect(_ key: Key) {
        guard let address = HostPort(key.address), !address.host.isEmpty else {
            self.failed(key, error: MembershipTransportError.badFrame("invalid address \(key.address)"))
            return
        }
        let (host, port) = (address.host, address.port)
        let context = self.tls?.contexts.client
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(1))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: context, serverHostname: nil)
                        )
                    }
                    try channel.pipeline.syncOperations.addHandler(OutboundConnectionHandler())
                }
            }
        bootstrap.connect(host: host, port: port).whenComplete { result in
            switch result {
            case .success(let channel):
                let pending = self.slots.withLock { slots -> [ByteBuffer] in
                    guard case .connecting(let pending) = slots[key] else { return [] }
                    slots[key] = .connected(channel)
                    return pending
                }
                for buffer in pending { channel.write(buffer, promise: nil) }
                channel.flush()
                channel.closeFuture.whenComplete { _ in
                    self.slots.withLock { slots in
                        if case .connected(let current) = slots[key], current === channel { slots[key] = nil }
                    }
                }
            case .failure(let error):
                self.failed(key, error: error)
            }
        }
    }

    private func failed(_ key: Key, error: any Error) {
        self.slots.withLock { slots in
            var delay = Duration.milliseconds(100)
            if case .backingOff(_, let previous) = slots[key] { delay = min(previous * 2, .seconds(5)) }
            slots[key] = .backingOff(until: ContinuousClock.now + delay, delay: delay)
        }
        self.logger.debug(
            "cannot reach a member",
            metadata: ["membership.address": "\(key.address)", "membership.error": "\(error)"]
        )
    }

    func closeAll() {
        let channels = self.slots.withLock { slots -> [any Channel] in
            defer { slots.removeAll() }
            return slots.values.compactMap { if case .connected(let channel) = $0 { channel } else { nil } }
        }
        for channel in channels { channel.close(promise: nil) }
    }
}
