/// What KIS's answers look like, checked before anything from a server is stored,
/// printed or put in a header. A hostile or broken server (a proxy's page, a
/// man-in-the-middle on a test URL) must not get control characters onto a terminal or
/// megabytes into the vault through an "approval key" (SECURITY.md, "Input from outside").
public enum KISShapes {
    /// Longest approval key accepted; KIS's are 286 characters.
    public static let maxApprovalKey = 1024
    /// Longest access token accepted; KIS's JWTs are about 350 characters.
    public static let maxAccessToken = 8192
    /// Longest KIS message kept; KIS's are a sentence.
    public static let maxMessage = 300

    /// 16 to ``maxApprovalKey`` characters of `A-Z a-z 0-9 - _ . + / =`.
    public static func isApprovalKey(_ text: String) -> Bool {
        (16...maxApprovalKey).contains(text.utf8.count) && text.utf8.allSatisfy(isKeyByte)
    }

    /// 16 to ``maxAccessToken`` characters of the same set (a JWT is base64url and dots).
    public static func isAccessToken(_ text: String) -> Bool {
        (16...maxAccessToken).contains(text.utf8.count) && text.utf8.allSatisfy(isKeyByte)
    }

    /// An error code: 1 to 16 letters and digits (`EGW00133`, `OPSP0008`).
    public static func isCode(_ text: String) -> Bool {
        (1...16).contains(text.utf8.count) && text.utf8.allSatisfy { isAlphanumeric($0) }
    }

    /// A short word such as a token type (`Bearer`).
    public static func isWord(_ text: String) -> Bool {
        (1...32).contains(text.utf8.count) && text.utf8.allSatisfy { isAlphanumeric($0) }
    }

    /// `text` without control characters (each becomes a space) and cut to ``maxMessage``.
    public static func cleanMessage(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            if count == maxMessage { out.append("…"); break }
            let control = scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
                || (0x202a...0x202e).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
            out.append(control ? " " : scalar)
            count += 1
        }
        return String(out)
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
    }

    static func isKeyByte(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == 45 || byte == 95 || byte == 46 || byte == 43 || byte == 47 || byte == 61
    }
}
