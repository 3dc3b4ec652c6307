/// Errors of the membership transport: TLS material, listening, frames.
public struct MembershipTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case tlsMaterial, bind, frameTooLarge, badFrame, identityMismatch }
        private let base: Base
        public static let tlsMaterial = Code(base: .tlsMaterial)
        public static let bind = Code(base: .bind)
        public static let frameTooLarge = Code(base: .frameTooLarge)
        public static let badFrame = Code(base: .badFrame)
        public static let identityMismatch = Code(base: .identityMismatch)
        public var description: String { "\(self.base)" }
    }

    public var code: Code
    public var message: String
    public var description: String { "\(self.code): \(self.message)" }

    static func tlsMaterial(_ message: String) -> Self { Self(code: .tlsMaterial, message: message) }
    static func bind(_ message: String) -> Self { Self(code: .bind, message: message) }
    static func frameTooLarge(_ size: Int, limit: Int) -> Self {
        Self(code: .frameTooLarge, message: "frame of \(size) bytes exceeds the limit of \(limit)")
    }
    static func badFrame(_ message: String) -> Self { Self(code: .badFrame, message: message) }
    static func identityMismatch(_ message: String) -> Self { Self(code: .identityMismatch, message: message) }
}
