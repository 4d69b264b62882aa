/// Reading a URL as written, without a URL parser (Foundation's starts ICU's IDNA for a
/// host, milliseconds of every command): its authority and host, and what a message may
/// show of it. Shared by the KIS client and the team vault, so a password in either kind
/// of URL is hidden the same way.
public enum URLText {
    /// Where the authority of `scheme://authority[/path][?query][#fragment]` is in `text`
    /// (from after `://` to the first `/`, `?` or `#`), or nil without a `://`: the one
    /// reading of a URL's parts that every check and message here shares.
    public static func authority(of text: String) -> Range<String.Index>? {
        var index = text.startIndex
        while index < text.endIndex, !text[index...].hasPrefix("://") { index = text.index(after: index) }
        guard index < text.endIndex else { return nil }
        let start = text.index(index, offsetBy: 3)
        return start..<(text[start...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? text.endIndex)
    }

    /// The host of `scheme://[user[:password]@]host[:port][/...]` as written (an IPv6
    /// address with its brackets), or nil.
    public static func writtenHost(_ text: String) -> String? {
        guard let range = authority(of: text) else { return nil }
        var authority = text[range]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { return nil }
            return String(authority[...close])
        }
        return String(authority.prefix { $0 != ":" })
    }

    /// `text` with any `user:password@` removed from its authority, and control characters
    /// escaped: what a message may show of a URL.
    public static func redacted(_ text: String) -> String {
        var shown = text
        if let authority = authority(of: shown) {
            if let at = shown[authority].lastIndex(of: "@") {
                shown.replaceSubrange(authority.lowerBound...at, with: "***@")
            }
        } else if let at = shown.lastIndex(of: "@") {
            shown.replaceSubrange(shown.startIndex...at, with: "***@")
        }
        return printable(shown)
    }

    /// Control characters as `\xNN`, and at most 200 characters.
    public static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(200) {
            if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) { out += "\\x" + String(scalar.value, radix: 16) }
            else { out.unicodeScalars.append(scalar) }
        }
        return text.unicodeScalars.count > 200 ? out + "…" : out
    }
}
