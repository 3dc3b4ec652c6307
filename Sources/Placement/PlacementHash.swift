/// The fixed hash every node uses for placement. It must give the same value on every platform, build
/// and process, so it never uses `hashValue`/`Hasher` (seeded per process).
///
/// - `keyHash(s)` = FNV-1a 64 over the UTF-8 bytes of `s` (offset basis 0xcbf29ce484222325,
///   prime 0x100000001b3), then the SplitMix64 finalizer (`mix`) for avalanche.
/// - `score(keyHash, memberSeed)` = `mix(keyHash ^ memberSeed)`, where `memberSeed = keyHash(memberID)`
///   is computed once per member. Ranking a key therefore costs one FNV pass over the key and one
///   `mix` per member.
///
/// The test vectors in `PlacementHashTests` pin these values.
public enum PlacementHash {
    @inlinable
    public static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// SplitMix64's finalizer: a bijection on 64-bit values with strong avalanche.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    @inlinable
    public static func keyHash(_ key: String) -> UInt64 { self.mix(self.fnv1a64(key)) }

    @inlinable
    public static func score(keyHash: UInt64, memberSeed: UInt64) -> UInt64 { self.mix(keyHash ^ memberSeed) }
}
