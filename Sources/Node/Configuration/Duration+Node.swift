import NIOCore

/// Conversions at the edges: the node keeps time as `Duration`; NIO and AsyncHTTPClient take
/// `TimeAmount`, Prometheus and JSON take seconds, the registry epoch milliseconds.
extension Duration {
    /// In seconds, with the fraction.
    var seconds: Double { Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18 }

    /// Whole milliseconds (truncated).
    var milliseconds: Int64 { self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000 }

    /// As NIO's `TimeAmount` (nanoseconds; saturating beyond about 292 years).
    var timeAmount: TimeAmount {
        let (product, overflow) = self.components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .nanoseconds(.max) }
        return .nanoseconds(product + self.components.attoseconds / 1_000_000_000)
    }
}
