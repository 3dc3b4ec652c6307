import Foundation
import Logging

/// Writes one JSON object per line to stdout: `{"time","level","msg","logger", …metadata}`, the
/// ancestor's log shape. Metadata keys become top-level fields.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private static let lock = NSLock()
    nonisolated(unsafe) private static let formatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = self.metadata
        for (key, value) in event.metadata ?? [:] { fields[key] = value }
        Self.lock.lock()
        fields["time"] = .string(Self.formatter.string(from: Date()))
        Self.lock.unlock()
        fields["level"] = .string(event.level.rawValue.uppercased())
        fields["msg"] = .string("\(event.message)")
        fields["logger"] = .string(self.label)
        var line = ""
        line.reserveCapacity(256)
        Self.append(.dictionary(fields), to: &line)
        line.append("\n")
        Self.lock.lock()
        FileHandle.standardOutput.write(Data(line.utf8))
        Self.lock.unlock()
    }

    /// Encodes `value` as JSON, object keys sorted (written by hand: Foundation's serializer was
    /// a visible share of a busy node's CPU).
    static func append(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text):
            self.appendString(text, to: &line)
        case .stringConvertible(let convertible):
            self.appendString("\(convertible)", to: &line)
        case .array(let values):
            line.append("[")
            for (index, element) in values.enumerated() {
                if index > 0 { line.append(",") }
                self.append(element, to: &line)
            }
            line.append("]")
        case .dictionary(let fields):
            line.append("{")
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { line.append(",") }
                self.appendString(key, to: &line)
                line.append(":")
                self.append(fields[key]!, to: &line)
            }
            line.append("}")
        }
    }

    private static func appendString(_ text: String, to line: inout String) {
        line.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line.append("\\\"")
            case "\\": line.append("\\\\")
            case "\n": line.append("\\n")
            case "\r": line.append("\\r")
            case "\t": line.append("\\t")
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                line.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line.append("\"")
    }
}
