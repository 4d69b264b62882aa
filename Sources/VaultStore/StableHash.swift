/// FNV-1a, 64 bits: a stable, cheap name for a text (the team vault's advisory-lock key, an
/// agent's lock file for a team vault). Not a cryptographic hash: nothing depends on it
/// being hard to collide on purpose.
public enum StableHash {
    public static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }
}
