import SQLiteSupport

/// An error reported to a Hrana client: `{"message", "code"}`. SQLite errors keep SQLite's message,
/// which clients string-match (pyturso looks for "no such table").
struct HranaError: Error, CustomStringConvertible {
    var message: String
    var code: String

    init(message: String, code: String) {
        self.message = message
        self.code = code
    }

    init(_ error: SQLiteError) {
        self.message = error.message
        self.code = error.codeName
    }

    static func invalid(_ message: String) -> HranaError {
        HranaError(message: message, code: "INVALID_REQUEST")
    }

    var json: [String: Any] { ["message": self.message, "code": self.code] }
    var description: String { "\(self.code): \(self.message)" }
}
