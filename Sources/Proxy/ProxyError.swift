/// Why a request could not be forwarded; each code maps to one HTTP status.
public struct ProxyError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case upstreamUnreachable, upstreamTimeout, bodyTooLarge, upstreamFailed
        }
        private let base: Base
        public static let upstreamUnreachable = Code(base: .upstreamUnreachable)
        public static let upstreamTimeout = Code(base: .upstreamTimeout)
        public static let bodyTooLarge = Code(base: .bodyTooLarge)
        public static let upstreamFailed = Code(base: .upstreamFailed)
        public var description: String {
            switch self.base {
            case .upstreamUnreachable: "UPSTREAM_UNREACHABLE"
            case .upstreamTimeout: "UPSTREAM_TIMEOUT"
            case .bodyTooLarge: "PAYLOAD_TOO_LARGE"
            case .upstreamFailed: "UPSTREAM_FAILED"
            }
        }
    }

    public var code: Code
    public var message: String
    public var description: String { "\(self.code): \(self.message)" }

    /// The HTTP status to answer with.
    public var status: Int {
        switch self.code {
        case .upstreamTimeout: 504
        case .bodyTooLarge: 413
        default: 502
        }
    }

    static func unreachable(_ message: String) -> Self { Self(code: .upstreamUnreachable, message: message) }
    static func timeout(_ message: String) -> Self { Self(code: .upstreamTimeout, message: message) }
    static func bodyTooLarge(_ limit: Int) -> Self {
        Self(code: .bodyTooLarge, message: "request body exceeds \(limit) bytes")
    }
    static func failed(_ message: String) -> Self { Self(code: .upstreamFailed, message: message) }
}
