/// Parses durations in Go's syntax (`300ms`, `1.5h`, `2h45m`, `168h`), plus `d` for days (`30d`).
public enum GoDuration {
    /// Go's largest duration (int64 nanoseconds), about 292 years. Longer texts are refused, so no
    /// conversion of a parsed duration to integer seconds or milliseconds can overflow.
    public static let maximumSeconds = 9_223_372_036.0

    /// Returns the duration in seconds, or nil when `text` is not a valid duration or exceeds
    /// `maximumSeconds`. Negative durations are rejected: every duration here is a length of time.
    public static func parse(_ text: String) -> Double? {
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
            ("d", 86400),
        ]
        var rest = Substring(text.trimmingPrefix("+"))
        if rest == "0" { return 0 }
        guard !rest.isEmpty, rest.utf8.count <= 64 else { return nil }
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
        return total.isFinite && total <= Self.maximumSeconds ? total : nil
    }

    /// Parses `text` as a duration within `range`, or explains what is wrong: the message names
    /// `field` and its limits.
    public static func parse(
        _ text: String,
        field: String,
        range: ClosedRange<Double>
    ) -> Result<Double, DurationProblem> {
        guard let seconds = self.parse(text), range.contains(seconds) else {
            return .failure(
                DurationProblem(
                    message:
                        "\(field)=\(text) is not a duration between \(self.format(range.lowerBound)) and \(self.format(range.upperBound)) (examples: 5s, 1h30m, 168h, 30d)"
                )
            )
        }
        return .success(seconds)
    }

    /// Why a duration was refused.
    public struct DurationProblem: Error, Sendable {
        public var message: String
    }

    /// Formats seconds the way Go prints a duration (`168h0m0s`, `1m30s`, `500ms`).
    public static func format(_ seconds: Double) -> String {
        let seconds = seconds.isFinite ? min(max(seconds, 0), Self.maximumSeconds) : Self.maximumSeconds
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
