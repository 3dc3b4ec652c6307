/// Parses durations in Go's syntax (`300ms`, `1.5h`, `2h45m`, `168h`), plus `d` for days (`30d`).
public enum GoDuration {
    /// Returns the duration in seconds, or nil when `text` is not a valid duration. Negative durations
    /// are rejected: every duration here is a length of time.
    public static func parse(_ text: String) -> Double? {
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
            ("d", 86400),
        ]
        var rest = Substring(text.trimmingPrefix("+"))
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1,
                let value = Double(number.hasPrefix(".") ? "0" + number : String(number))
            else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        return total.isFinite ? total : nil
    }

    /// Formats seconds the way Go prints a duration (`168h0m0s`, `1m30s`, `500ms`).
    public static func format(_ seconds: Double) -> String {
        if seconds == 0 { return "0s" }
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        let whole = Int(seconds)
        let h = whole / 3600
        let m = (whole % 3600) / 60
        let s = whole % 60
        if h > 0 { return "\(h)h\(m)m\(s)s" }
        if m > 0 { return "\(m)m\(s)s" }
        return "\(s)s"
    }
}
