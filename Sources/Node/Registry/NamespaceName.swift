/// Namespace names: `^[a-z0-9][a-z0-9_-]{0,62}$`. They become file names, so they are checked before
/// they touch the filesystem: no `/`, no `.`, no `%`, no NUL, nothing that could traverse a path.
/// Names starting with `_` are reserved (`_state`), which the pattern already excludes.
public enum NamespaceName {
    public static func isValid(_ name: some StringProtocol) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func isAlphanumeric(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard isAlphanumeric(bytes[0]) else { return false }
        return bytes.dropFirst().allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// The error message for an invalid name.
    public static func problem(_ name: some StringProtocol) -> String {
        if name.hasPrefix("_") { return "namespace names starting with '_' are reserved" }
        return "invalid namespace name: must match ^[a-z0-9][a-z0-9_-]{0,62}$"
    }
}
