/// Why a replication step was refused: the one error type of this module.
public struct ReplicationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Bytes that are not whole, checksum-valid, committed frames continuing the WAL.
        case invalidFrames
        /// The shipment starts elsewhere than the copy's position.
        case positionMismatch
        /// The sender is not the owner at this epoch, or this node is not its follower.
        case staleSender
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }
}
