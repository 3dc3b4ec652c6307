/// The node's errors: configuration, state and startup problems, and request failures that map to an
/// HTTP status (`status`) with a JSON body `{"error":{"message","code"}}`.
public struct NodeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidConfiguration, stateUnreadable, stateTooNew, io
            case unauthorized, invalidName, notFound, exists, limitReached, badRequest, methodNotAllowed
            case backendUnavailable, backendFailed, shuttingDown, payloadTooLarge
            case ownerUnavailable, misdirected, peerFailed, peerProtocol, historyUnavailable, replicaConflict
        }

        private let base: Base
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        public static let stateUnreadable = Code(base: .stateUnreadable)
        public static let stateTooNew = Code(base: .stateTooNew)
        public static let io = Code(base: .io)
        public static let unauthorized = Code(base: .unauthorized)
        public static let invalidName = Code(base: .invalidName)
        public static let notFound = Code(base: .notFound)
        public static let exists = Code(base: .exists)
        public static let limitReached = Code(base: .limitReached)
        public static let badRequest = Code(base: .badRequest)
        public static let methodNotAllowed = Code(base: .methodNotAllowed)
        public static let backendUnavailable = Code(base: .backendUnavailable)
        public static let backendFailed = Code(base: .backendFailed)
        public static let shuttingDown = Code(base: .shuttingDown)
        public static let payloadTooLarge = Code(base: .payloadTooLarge)
        public static let ownerUnavailable = Code(base: .ownerUnavailable)
        public static let misdirected = Code(base: .misdirected)
        public static let peerFailed = Code(base: .peerFailed)
        public static let peerProtocol = Code(base: .peerProtocol)
        /// The change history does not reach back far enough for a page-by-page catch-up.
        public static let historyUnavailable = Code(base: .historyUnavailable)
        /// A shipment that does not fit a follower's copy (position, frames, or the sender's role).
        public static let replicaConflict = Code(base: .replicaConflict)

        public var description: String {
            switch self.base {
            case .invalidConfiguration: "INVALID_CONFIGURATION"
            case .stateUnreadable: "STATE_UNREADABLE"
            case .stateTooNew: "STATE_TOO_NEW"
            case .io: "IO_ERROR"
            case .unauthorized: "UNAUTHORIZED"
            case .invalidName: "INVALID_NAMESPACE"
            case .notFound: "NOT_FOUND"
            case .exists: "NAMESPACE_EXISTS"
            case .limitReached: "LIMIT_REACHED"
            case .badRequest: "BAD_REQUEST"
            case .methodNotAllowed: "METHOD_NOT_ALLOWED"
            case .backendUnavailable: "BACKEND_UNAVAILABLE"
            case .backendFailed: "BACKEND_FAILED"
            case .shuttingDown: "SHUTTING_DOWN"
            case .payloadTooLarge: "PAYLOAD_TOO_LARGE"
            case .ownerUnavailable: "OWNER_UNAVAILABLE"
            case .misdirected: "MISDIRECTED_REQUEST"
            case .peerFailed: "PEER_FAILED"
            case .peerProtocol: "PEER_PROTOCOL"
            case .historyUnavailable: "HISTORY_UNAVAILABLE"
            case .replicaConflict: "REPLICA_CONFLICT"
            }
        }
    }

    public var code: Code
    public var message: String
    /// The HTTP status code this error answers with.
    public var statusCode: Int
    /// Seconds for a `Retry-After` header, when retrying makes sense.
    public var retryAfter: Int?
    /// The member that owns the namespace, when the error is about reaching it (JSON `owner`, header
    /// `x-turso-owner`).
    public var owner: String?

    public var description: String { "\(self.code): \(self.message)" }

    init(_ code: Code, _ message: String, status: Int = 500, retryAfter: Int? = nil, owner: String? = nil) {
        self.code = code
        self.message = message
        self.statusCode = status
        self.retryAfter = retryAfter
        self.owner = owner
    }

    static func ownerUnavailable(_ message: String, owner: String?) -> Self {
        Self(.ownerUnavailable, message, status: 503, retryAfter: 1, owner: owner)
    }

    /// A clustered node before its cluster log opened: it decides nothing about namespaces yet.
    static let noClusterLog = Self.ownerUnavailable("this node has no cluster log yet; retry shortly", owner: nil)

    static func invalidConfiguration(_ message: String) -> Self { Self(.invalidConfiguration, message) }
    static func io(_ message: String) -> Self { Self(.io, message) }
    static func unauthorized() -> Self { Self(.unauthorized, "missing or invalid bearer token", status: 401) }
    static func invalidName(_ name: some StringProtocol) -> Self {
        Self(.invalidName, NamespaceName.problem(name), status: 400)
    }
    static func notFound(_ message: String) -> Self { Self(.notFound, message, status: 404) }
    static func badRequest(_ message: String) -> Self { Self(.badRequest, message, status: 400) }
}
