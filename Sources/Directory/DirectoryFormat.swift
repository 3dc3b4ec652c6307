/// Which apply rules (directory formats) a build knows, and how members tell each other.
///
/// A batch carries the format its commands need, and a node that meets one it does not know stops
/// applying rather than diverge. So a format is used only once the log has raised the directory to
/// it (`raiseFormat`, proposed by the leader when every member announces it: `Roster.formatRaise`).
/// Members announce their newest format in gossip as build metadata of their version string
/// (`0.1.0+directory.2`): the one field every earlier build carries without interpreting it, so the
/// announcement needs no new wire format.
///
/// Formats: 1, the first log; 2, guarded commands; 3, replica sets (a namespace's followers, its
/// in-sync set and their version, in its rows, its snapshots and the commands that change them).
public enum DirectoryFormat {
    /// The newest apply rules this build knows.
    public static let supported: UInt32 = 3
    /// What every build with a cluster log applies (guarded commands included): usable before any
    /// raise, and what a member announcing nothing is taken to know.
    public static let baseline: UInt32 = 2

    /// `release` with this build's format as build metadata.
    public static func announcing(_ release: String, format: UInt32 = Self.supported) -> String {
        "\(release)+directory.\(format)"
    }

    /// The format a member's version string announces (`baseline` when it announces none).
    public static func announced(in version: String) -> UInt32 {
        guard let plus = version.firstIndex(of: "+") else { return Self.baseline }
        let identifiers = version[version.index(after: plus)...].split(separator: ".", omittingEmptySubsequences: false)
        for (index, identifier) in identifiers.enumerated() where identifier == "directory" {
            if index + 1 < identifiers.count, let format = UInt32(identifiers[index + 1]) { return format }
        }
        return Self.baseline
    }

    /// The format proposals may use while the log has raised the directory to `raised`.
    public static func usable(raised: UInt32) -> UInt32 { max(raised, Self.baseline) }
}
