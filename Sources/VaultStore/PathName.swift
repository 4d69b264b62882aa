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
