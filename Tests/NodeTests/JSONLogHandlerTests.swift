import Foundation
import Logging
import Testing

@testable import Node

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test func anyMetadataEncodesAsJSONThatParsesBackToTheSameValues() throws {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{07} é 🚀 </script>"
        let value: Logger.Metadata.Value = .dictionary([
            "b": .string(tricky),
            "a": .array([.string("x"), .stringConvertible(42), .dictionary(["k": .string("v")])]),
            "namespace": .string("tenant-1"),
        ])
        var line = ""
        JSONLogHandler.append(value, to: &line)
        #expect(line.hasPrefix("{\"a\":"))  // keys sorted
        let parsed = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        )
        #expect(parsed["b"] as? String == tricky)
        #expect(parsed["namespace"] as? String == "tenant-1")
        let array = try #require(parsed["a"] as? [Any])
        #expect(array.count == 3)
        #expect(array[1] as? String == "42")
        #expect((array[2] as? [String: String]) == ["k": "v"])
    }
}
