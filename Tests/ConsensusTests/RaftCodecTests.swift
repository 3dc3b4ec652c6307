import Testing

@testable import Consensus

/// The wire and storage form of messages, payloads and configurations.
@Suite("Raft codec")
struct RaftCodecTests {
    static let configuration = ClusterConfiguration(
        voters: [ReplicaID(1), ReplicaID(300)],
        learners: [ReplicaID(.max)]
    )

    static var messages: [RaftMessage] {
        let entries = [
            LogEntry(term: 7, index: 41, payload: .empty),
            LogEntry(term: 7, index: 42, payload: .command([0, 1, 2, 255])),
            LogEntry(term: 8, index: 43, payload: .configuration(.promoteLearner(ReplicaID(.max)), Self.configuration)),
        ]
        let kinds: [RaftMessage.Kind] = [
            .preVote(lastLogIndex: 0, lastLogTerm: 0), .preVoteResponse(granted: true),
            .vote(lastLogIndex: 1 << 40, lastLogTerm: 9, transfer: true), .voteResponse(granted: false),
            .append(prevLogIndex: 40, prevLogTerm: 7, entries: entries, commit: 41),
            .append(prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0), .appendAccepted(index: 43),
            .appendRejected(rejectedIndex: 43, hintIndex: 12, hintTerm: 3),
            .heartbeat(commit: .max, readSequence: 17), .heartbeatResponse(readSequence: 17),
            .snapshot(
                Snapshot(
                    metadata: SnapshotMetadata(index: 1000, term: 8, configuration: Self.configuration),
                    data: Array(repeating: 7, count: 300)
                )
            ),
            .timeoutNow,
        ]
        return kinds.enumerated().map { index, kind in
            RaftMessage(from: ReplicaID(UInt64(index) + 1), to: ReplicaID(.max - UInt64(index)), term: 8, kind: kind)
        }
    }

    @Test func messagesRoundTripAndEveryTruncationIsRefused() throws {
        for message in Self.messages {
            let bytes = RaftCodec.encode(message)
            #expect(try RaftCodec.decodeMessage(bytes) == message)
            for cut in 0..<bytes.count {
                #expect(throws: RaftCodec.DecodingError.self, "\(message.kind) cut at \(cut)") {
                    try RaftCodec.decodeMessage(Array(bytes.prefix(cut)))
                }
            }
            #expect(throws: RaftCodec.DecodingError.self) { try RaftCodec.decodeMessage(bytes + [0]) }
        }
    }

    @Test func hostileInputIsRefused() {
        let cases: [[UInt8]] = [
            [],
            [2, 1, 1, 1, 11],  // another format version
            [1, 1, 1, 1, 99],  // unknown kind
            [1, 1, 1, 1, 2, 2],  // a boolean that is not 0 or 1
            [1] + Array(repeating: 0xff, count: 11),  // a varint beyond 64 bits
            [1, 1, 1, 1, 5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],  // 4 billion entries in 13 bytes
            [1, 1, 1, 1, 10, 1, 1, 0xff, 0x7f],  // a configuration longer than the frame
        ]
        for bytes in cases {
            #expect(throws: RaftCodec.DecodingError.self, "\(bytes)") { try RaftCodec.decodeMessage(bytes) }
        }
    }

    @Test func payloadsAndConfigurationsRoundTrip() throws {
        for payload: LogEntry.Payload in [
            .empty, .command([]), .command([9]), .configuration(.remove(ReplicaID(5)), Self.configuration),
        ] {
            #expect(try RaftCodec.decodePayload(RaftCodec.encode(payload)) == payload)
        }
        #expect(try RaftCodec.decodeConfiguration(RaftCodec.encode(ClusterConfiguration.empty)) == .empty)
        #expect(try RaftCodec.decodeConfiguration(RaftCodec.encode(Self.configuration)) == Self.configuration)
    }
}
