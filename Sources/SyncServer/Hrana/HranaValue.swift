import Foundation
import SQLiteSupport

/// Conversions between Hrana's JSON values and SQLite values.
///
/// Integers travel as strings (`{"type":"integer","value":"42"}`), floats as JSON numbers, blobs as
/// base64 (accepted with or without padding, emitted padded).
enum HranaValue {
    static func decode(_ json: Any?) throws(HranaError) -> SQLiteValue {
        guard let object = json as? [String: Any], let type = object["type"] as? String else {
            throw .invalid("a value must be an object with a type")
        }
        switch type {
        case "null":
            return .null
        case "integer":
            if let text = object["value"] as? String, let value = Int64(text) { return .integer(value) }
            if let number = object["value"] as? NSNumber, !(object["value"] is Bool),
                let value = Int64(exactly: number.doubleValue)
            {
                return .integer(value)
            }
            throw .invalid("an integer value must be a decimal string in the 64-bit range")
        case "float":
            if let number = object["value"] as? NSNumber { return .real(number.doubleValue) }
            if object["value"] is NSNull { return .real(.nan) }
            throw .invalid("a float value must be a number")
        case "text":
            guard let text = object["value"] as? String else { throw .invalid("a text value must be a string") }
            return .text(text)
        case "blob":
            guard var text = object["base64"] as? String else { throw .invalid("a blob value needs base64") }
            text = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            text += String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
            guard let data = Data(base64Encoded: text) else { throw .invalid("a blob value has invalid base64") }
            return .blob([UInt8](data))
        default:
            throw .invalid("unknown value type \(type)")
        }
    }

    static func encode(_ value: SQLiteValue) -> [String: Any] {
        switch value {
        case .null:
            return ["type": "null"]
        case .integer(let v):
            return ["type": "integer", "value": String(v)]
        case .real(let v):
            return v.isFinite ? ["type": "float", "value": v] : ["type": "float", "value": NSNull()]
        case .text(let v):
            return ["type": "text", "value": v]
        case .blob(let v):
            return ["type": "blob", "base64": Data(v).base64EncodedString()]
        }
    }
}
