import HTTPTypes
import Testing

@testable import Proxy

@Suite("Hop-by-hop headers")
struct HopByHopHeadersTests {
    @Test func connectionHeadersAndTheOnesItNamesStayBehind() {
        var fields = HTTPFields()
        fields[.connection] = "keep-alive, X-Session-Hint"
        fields[HTTPField.Name("x-session-hint")!] = "drop me"
        fields[.transferEncoding] = "chunked"
        fields[HTTPField.Name("host")!] = "node:8080"
        fields[.contentLength] = "12"
        fields[.authorization] = "Bearer t"
        fields[HTTPField.Name("x-custom")!] = "keep me"
        let forwarded = Dictionary(
            uniqueKeysWithValues: HopByHopHeaders.endToEnd(fields).map { ($0.0.lowercased(), $0.1) }
        )
        #expect(forwarded == ["authorization": "Bearer t", "x-custom": "keep me"])
    }
}
