import Foundation

/// The columns, in order, of the account file header (`kisvault account import`,
/// `kis-mock generate`); JSON account objects use the same keys.
public let accountFileColumns = ["name", "environment", "appkey", "appsecret", "account_no", "hts_id", "tags"]

/// A small RFC 4180 CSV reader that remembers the line each record starts on.
public enum CSV {
    public struct Record: Sendable {
        /// The line the record starts on (1-based).
        public var line: Int
        public var fields: [String]
        /// Why the record is malformed, if it is.
        public var error: String?
    }

    /// Splits `text` into records; never fails, but marks malformed records.
    public static func parse(_ text: String) -> [Record] {
        var records: [Record] = []
        var fields: [String] = []
        var field = ""
        var inQuotes = false
        var line = 1
        var recordLine = 1
        var afterQuote = false
        var error: String?
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar?
        func next() -> Unicode.Scalar? {
            if let p = pending { pending = nil; return p }
            return iterator.next()
        }
        func endRecord() {
            fields.append(field)
            records.append(Record(line: recordLine, fields: fields, error: error))
            fields = []; field = ""; error = nil; afterQuote = false
        }
        while let c = next() {
            if inQuotes {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { inQuotes = false; afterQuote = true; pending = n }
                    } else { inQuotes = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case ",":
                fields.append(field); field = ""; afterQuote = false
            case "\r":
                if let n = next(), n != "\n" { pending = n }
                line += 1; endRecord(); recordLine = line
            case "\n":
                line += 1; endRecord(); recordLine = line
            case "\"" where field.isEmpty && !afterQuote:
                inQuotes = true
            default:
                if afterQuote && error == nil { error = "a character after a closing quote" }
                field.unicodeScalars.append(c)
            }
        }
        if inQuotes { error = "a quoted field is never closed" }
        if !field.isEmpty || !fields.isEmpty || inQuotes { endRecord() }
        return records
    }

    /// Quotes a field when it needs it.
    public static func escape(_ field: String) -> String {
        field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
    }
}
