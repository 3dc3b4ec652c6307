import Foundation

/// Writes Hrana responses as JSON. Faster than `JSONSerialization` for the value shapes the executor
/// builds (strings, integers, doubles, booleans, `NSNull`, arrays and string-keyed dictionaries of
/// those), which dominate the cost of small requests.
enum JSONWriter {
    static func serialize(_ value: Any) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        self.write(value, into: &out)
        return out
    }

    static func write(_ value: Any, into out: inout [UInt8]) {
        switch value {
        case let string as String:
            self.write(string: string, into: &out)
        case let dictionary as [String: Any]:
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, element) in dictionary {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                self.write(string: key, into: &out)
                out.append(UInt8(ascii: ":"))
                self.write(element, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                self.write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let bool as Bool:
            out.append(contentsOf: bool ? Array("true".utf8) : Array("false".utf8))
        case let int as Int:
            out.append(contentsOf: String(int).utf8)
        case let int as Int64:
            out.append(contentsOf: String(int).utf8)
        case let double as Double:
            if double.isFinite {
                out.append(contentsOf: double.description.utf8)
            } else {
                out.append(contentsOf: "null".utf8)
            }
        default:
            out.append(contentsOf: "null".utf8)
        }
    }

    static func write(string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
