import Foundation
import Testing

@testable import SyncServer

@Suite("JSON writer")
struct JSONWriterTests {
    @Test func writesWhatJSONSerializationReadsBack() throws {
        let value: [String: Any] = [
            "s": "quote \" backslash \\ newline \n tab \t bell \u{07} é 🎉",
            "i": 42, "big": Int64.max, "d": 1.25, "tiny": 1e-7, "neg": -3.5, "t": true, "f": false, "n": NSNull(),
            "a": [1, "x", NSNull(), [String: Any]()] as [Any], "rows": [[1, 2], [3]] as [[Any]],
        ]
        let bytes = JSONWriter.serialize(value)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(parsed["s"] as? String == value["s"] as? String)
        #expect((parsed["i"] as? NSNumber)?.intValue == 42)
        #expect((parsed["big"] as? NSNumber)?.int64Value == Int64.max)
        #expect((parsed["d"] as? NSNumber)?.doubleValue == 1.25)
        #expect((parsed["tiny"] as? NSNumber)?.doubleValue == 1e-7)
        #expect(parsed["t"] as? Bool == true)
        #expect(parsed["f"] as? Bool == false)
        #expect(parsed["n"] is NSNull)
        #expect((parsed["a"] as? [Any])?.count == 4)
        #expect((parsed["rows"] as? [[Any]])?.count == 2)
        #expect(String(decoding: JSONWriter.serialize(Double.nan), as: UTF8.self) == "null")
    }
}
