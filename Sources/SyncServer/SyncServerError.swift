/// Errors that stop the backend from starting or serving.
public struct SyncServerError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case usage, unsupportedDatabase, bind, addressInUse }
        private let base: Base
        public static let usage = Code(base: .usage)
        public static let unsupportedDatabase = Code(base: .unsupportedDatabase)
        public static let bind = Code(base: .bind)
        public static let addressInUse = Code(base: .addressInUse)
        public var description: String { "\(self.base)" }
    }

    public var code: Code
    public var message: String
    public var description: String { self.message }

    static func usage(_ message: String) -> Self { Self(code: .usage, message: message) }
    static func unsupportedDatabase(_ message: String) -> Self { Self(code: .unsupportedDatabase, message: message) }
    static func bind(_ message: String) -> Self { Self(code: .bind, message: message) }
    static func addressInUse(_ message: String) -> Self { Self(code: .addressInUse, message: message) }
}
