import Foundation

/// The part of Python's pickle format (protocol 2) that a flat dict of text and integers
/// takes, so mojito2's `pickle.load` reads what kisvault writes. Nothing here reads pickles:
/// loading one runs code, and kisvault never does.
public enum Pickle {
    public enum Value: Sendable {
        case text(String)
        case integer(Int)
    }

    public static func dictionary(_ items: [(String, Value)]) -> Data {
        var out: [UInt8] = [0x80, 0x02, UInt8(ascii: "}"), UInt8(ascii: "(")]
        func text(_ value: String) {
            let bytes = Array(value.utf8)
            out.append(UInt8(ascii: "X"))  // BINUNICODE: 4-byte little-endian length, UTF-8
            out += withUnsafeBytes(of: UInt32(bytes.count).littleEndian, Array.init)
            out += bytes
        }
        for (key, value) in items {
            text(key)
            switch value {
            case .text(let string): text(string)
            case .integer(let number):
                // LONG1: a length byte, then the two's-complement little-endian bytes.
                out += [0x8a, 8] + withUnsafeBytes(of: Int64(number).littleEndian, Array.init)
            }
        }
        out += [UInt8(ascii: "u"), UInt8(ascii: ".")]  // SETITEMS, STOP
        return Data(out)
    }
}
