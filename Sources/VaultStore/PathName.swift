/// Splitting a path into its directory and last component.
///
/// Foundation's `NSString.deletingLastPathComponent` traps on some one-character paths
/// (`"a"`, `"-"`) on Linux, which took `kisvault account export --output a` down with
/// SIGILL; these are plain string operations with no such edge.
public enum PathName {
    /// The directory part: `"x/y"` → `"x"`, `"y"` → `"."`, `"/y"` → `"/"`, `"x/y/"` → `"x"`.
    public static func directory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        var directory = trimmed[..<slash]
        while directory.count > 1 && directory.hasSuffix("/") { directory = directory.dropLast() }
        return String(directory)
    }

    /// The last component: `"x/y"` → `"y"`, `"y"` → `"y"`, `"x/y/"` → `"y"`, `"/"` → `"/"`.
    public static func base(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        if trimmed == "/" { return "/" }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }
}

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
