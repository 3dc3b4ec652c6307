/// The shared secret between a node and the built-in backends it starts.
///
/// A backend listens on a loopback port that every local user can reach; without this, any process
/// on the host could read and write any namespace without the data port's token. The node makes one
/// random secret per process, passes it to each built-in backend in the environment (readable only
/// by the node's user through `/proc/<pid>/environ`) and sends it on every proxied request; the
/// backend refuses requests without it.
public enum BackendSecret {
    /// The environment variable the built-in backend reads its secret from.
    public static let environmentKey = "TURSO_SYNC_NODE_SECRET"
    /// The request header that carries the secret from the node's proxy to the backend.
    public static let headerName = "x-turso-backend-secret"

    /// A new random secret: 256 bits, hex-encoded.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        for _ in 0..<4 {
            let word: UInt64 = generator.next()
            let hex = String(word, radix: 16)
            text += String(repeating: "0", count: 16 - hex.count) + hex
        }
        return text
    }
}
