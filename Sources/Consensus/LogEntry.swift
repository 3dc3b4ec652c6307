/// One entry of the replicated log.
public struct LogEntry: Sendable, Equatable {
    public enum Payload: Sendable, Equatable {
        /// The no-op a new leader appends so that it can commit an entry of its own term quickly.
        case empty
        /// An opaque application command.
        case command([UInt8])
        /// A membership change together with the full configuration it results in: a replica's
        /// configuration is then a function of its log alone (even one that joined with an empty log).
        case configuration(ConfigurationChange, ClusterConfiguration)
    }

    public var term: UInt64
    public var index: UInt64
    public var payload: Payload

    public init(term: UInt64, index: UInt64, payload: Payload) {
        self.term = term
        self.index = index
        self.payload = payload
    }

    /// The approximate wire size, used for the per-message byte limit.
    public var byteSize: Int {
        switch self.payload {
        case .empty: 16
        case .command(let data): 16 + data.count
        case .configuration(_, let configuration): 32 + 8 * (configuration.voters.count + configuration.learners.count)
        }
    }

    /// The configuration this entry installs, if it is a membership change.
    public var configuration: ClusterConfiguration? {
        if case .configuration(_, let configuration) = self.payload { return configuration }
        return nil
    }
}

/// Where a proposal landed: it is committed iff the entry at `index` is committed with this `term`
/// (another term there means it was overwritten and will never be applied).
public struct LogPosition: Sendable, Equatable {
    public var index: UInt64
    public var term: UInt64

    public init(index: UInt64, term: UInt64) {
        self.index = index
        self.term = term
    }
}
