/// A `host:port` pair as addresses are written here (`:8080`, `127.0.0.1:8080`, `node-1:7946`,
/// `[::1]:8080`), parsed and formatted in one place for the node, the backend and the membership
/// transport.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    /// The host without IPv6 brackets; empty when the text had none (`:8080`).
    public var host: String
    /// 0...65535.
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; nil when it has no `:port` or the port is not 0...65535.
    public init?(_ text: some StringProtocol) {
        let text = String(text)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil  // an IPv6 literal needs brackets, or the port is ambiguous
        }
        self.init(host: host, port: port)
    }

    /// The host as it appears in a URL or an address: IPv6 literals in brackets.
    public static func bracketed(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

    public var description: String { "\(Self.bracketed(self.host)):\(self.port)" }
}
